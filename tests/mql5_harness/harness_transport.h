// The harness's SigBridgeTransport: the same interface as mql5_client/Include/SigBridge/Transport.mqh,
// but the DEALER socket lives in the Python driver (driver.py, pyzmq), reached over stdin and
// stdout. Each call sends one line and blocks until the driver's one-line reply. So the include
// files see the results the mql-zmq binding returns: send does not block, receive waits up to
// its timeout, and both report failures with a ZeroMQ error number and text.
#pragma once

#include <string>

#include "mql5_compat.h"

// Sends one request line to the driver and returns its reply line (harness_main.cpp).
std::string harness_call(const std::string &line);
std::string harness_hex(const unsigned char *bytes, size_t size);
bool harness_unhex(const std::string &hex, std::string &bytes);

class SigBridgeTransport {
 public:
  SigBridgeTransport() {}
  ~SigBridgeTransport() { close(); }
  SigBridgeTransport(const SigBridgeTransport &) = delete;
  SigBridgeTransport &operator=(const SigBridgeTransport &) = delete;

  // With a `server_key`, the driver's socket uses CURVE with these Z85 keys.
  bool open(const string &endpoint, const string &server_key, const string &public_key, const string &secret_key) {
    close();
    std::string line = "zmq open " + text_hex(endpoint);
    if (StringLen(server_key) > 0) line += " " + text_hex(server_key) + " " + text_hex(public_key) + " " + text_hex(secret_key);
    return check(harness_call(line), [this] { m_open = true; });
  }

  void close() {
    if (!m_open) return;
    m_open = false;
    harness_call("zmq close");
  }

  bool isOpen() const { return m_open; }

  bool send(const MqlArray<uchar> &payload) {
    if (!m_open) return fail(-1, "the socket is not open");
    std::string bytes(payload.items.begin(), payload.items.end());
    return check(harness_call("zmq send " + harness_hex(reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size())),
                 [] {});
  }

  // 1: a frame was copied to `payload`; 0: none arrived within `timeout_ms`; -1: failure.
  int receive(MqlArray<uchar> &payload, const uint timeout_ms) {
    if (!m_open) {
      fail(-1, "the socket is not open");
      return -1;
    }
    std::string reply = harness_call("zmq recv " + std::to_string(timeout_ms));
    if (reply == "none") return 0;
    if (reply.rfind("msg ", 0) == 0) {
      std::string bytes;
      if (!harness_unhex(reply.substr(4), bytes)) mql5_fatal("driver sent invalid hex: " + reply);
      ArrayResize(payload, static_cast<int>(bytes.size()));
      for (size_t i = 0; i < bytes.size(); i++) payload[static_cast<long>(i)] = static_cast<uchar>(bytes[i]);
      return 1;
    }
    check(reply, [] {});
    return -1;
  }

  int errorNumber() const { return m_error_number; }
  string errorText() const { return m_error_text; }

  // The driver owns the only context; there is nothing to release.
  static void releaseContext() {}

 private:
  bool m_open = false;
  int m_error_number = 0;
  string m_error_text;

  static std::string text_hex(const string &text) {
    std::string bytes = text.utf8();
    return harness_hex(reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size());
  }

  bool fail(int number, const char *text) {
    m_error_number = number;
    m_error_text = string(text);
    return false;
  }

  // "ok" runs `on_success`; "err NUMBER HEX_TEXT" records the error, as Zmq::errorNumber() would.
  template <typename Callback>
  bool check(const std::string &reply, Callback on_success) {
    if (reply == "ok") {
      m_error_number = 0;
      m_error_text = string();
      on_success();
      return true;
    }
    if (reply.rfind("err ", 0) == 0) {
      size_t space = reply.find(' ', 4);
      std::string text;
      if (space == std::string::npos || !harness_unhex(reply.substr(space + 1), text))
        mql5_fatal("driver sent an invalid error line: " + reply);
      m_error_number = std::stoi(reply.substr(4, space - 4));
      m_error_text = string(text.c_str());
      PrintFormat("SigBridge: ZeroMQ error %d: %s", m_error_number, m_error_text);
      return false;
    }
    mql5_fatal("driver sent an unexpected reply: " + reply);
  }
};
