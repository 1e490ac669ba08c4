// Command loop that drives the translated sigbridge include files for tests/test_mql5_client.py.
//
// stdin carries commands from the Python driver, one per line. For each command, stdout carries
// any number of "log TEXT" lines (Print output) and "zmq ..." transport calls, whose replies
// the driver writes to stdin, then one "done JSON" line. Strings travel as hex of their UTF-8
// bytes.
#include <iostream>
#include <map>
#include <sstream>

#include "mql5_compat.h"
#include "harness_transport.h"

#include <SigBridge/Client.mqh>
#include <SigBridge/SelfTest.mqh>
#include "SigBridgeSelfTest.mq5"

// ---------------------------------------------------------------------------------------------
// Pipe helpers.

void mql5_emit_log(const std::string &line) {
  std::string text = line;
  for (char &character : text)
    if (character == '\n' || character == '\r') character = ' ';
  std::cout << "log " << text << '\n' << std::flush;
}

std::string harness_call(const std::string &line) {
  std::cout << line << '\n' << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer)) mql5_fatal("the driver closed stdin during: " + line);
  return answer;
}

std::string harness_hex(const unsigned char *bytes, size_t size) {
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * size);
  for (size_t i = 0; i < size; i++) {
    hex.push_back(digits[bytes[i] >> 4]);
    hex.push_back(digits[bytes[i] & 15]);
  }
  return hex;
}

bool harness_unhex(const std::string &hex, std::string &bytes) {
  if (hex.size() % 2) return false;
  bytes.clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int value = 0;
    for (size_t k = 0; k < 2; k++) {
      char c = hex[i + k];
      int digit = -1;
      if (c >= '0' && c <= '9') digit = c - '0';
      if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
      if (digit < 0) return false;
      value = value * 16 + digit;
    }
    bytes.push_back(static_cast<char>(value));
  }
  return true;
}

static string text_from_hex(const std::string &hex) {
  std::string bytes;
  if (!harness_unhex(hex, bytes)) mql5_fatal("invalid hex argument: " + hex);
  return string(bytes.c_str());
}

// ---------------------------------------------------------------------------------------------
// JSON output.

class Json {
 public:
  Json &field(const std::string &name, const std::string &raw) {
    m_text += (m_text.empty() ? "{" : ",") + quote(name) + ":" + raw;
    return *this;
  }
  Json &text(const std::string &name, const string &value) { return field(name, quote(value.utf8())); }
  Json &number(const std::string &name, long long value) { return field(name, std::to_string(value)); }
  Json &real(const std::string &name, double value) {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.17g", value);
    return field(name, buffer);
  }
  Json &boolean(const std::string &name, bool value) { return field(name, value ? "true" : "false"); }
  std::string str() const { return m_text.empty() ? "{}" : m_text + "}"; }

  static std::string quote(const std::string &value) {
    std::string result = "\"";
    for (unsigned char c : value) {
      if (c == '"' || c == '\\') {
        result += '\\';
        result += static_cast<char>(c);
      } else if (c < 0x20) {
        char buffer[8];
        std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
        result += buffer;
      } else {
        result += static_cast<char>(c);
      }
    }
    return result + "\"";
  }

 private:
  std::string m_text;
};

static void done(const Json &json) { std::cout << "done " << json.str() << '\n' << std::flush; }

// ---------------------------------------------------------------------------------------------
// Commands.

static SigBridgeClient *client = nullptr;

static std::string client_state_json() {
  Json json;
  json.text("state", SigBridgeClientStateName(client->state()))
      .text("daemon_state", client->daemonState())
      .text("daemon_message", client->daemonMessage())
      .number("bars_needed", client->barsNeeded())
      .number("model_version", client->modelVersion())
      .number("acknowledged_time", client->acknowledgedTime())
      .text("last_error", client->lastError())
      .number("last_error_code", client->lastErrorCode())
      .number("reconnect_delay_ms", client->reconnectDelayMs())
      .number("reconnect_in_ms", client->reconnectInMs())
      .number("chunk_bars", client->chunkBars())
      .number("connects", client->connects())
      .number("timeouts", client->timeouts())
      .number("requests_sent", client->requestsSent())
      .number("pending_id", client->pendingId())
      .boolean("unsent_bars", client->hasUnsentBars());
  SigBridgeSignal signal;
  if (client->latestSignal(signal)) {
    Json latest;
    latest.number("bar_time", signal.barTime)
        .number("direction", signal.direction)
        .real("score", signal.score)
        .real("distance", signal.distance)
        .number("model_version", signal.modelVersion)
        .number("latency_us", signal.latencyUs);
    json.field("signal", latest.str());
  } else {
    json.field("signal", "null");
  }
  return json.str();
}

static void command_init(std::istringstream &arguments) {
  SigBridgeSettings settings;
  SigBridgeDefaultSettings(settings);
  std::string token;
  while (arguments >> token) {
    size_t equals = token.find('=');
    if (equals == std::string::npos) mql5_fatal("init argument without '=': " + token);
    std::string key = token.substr(0, equals);
    std::string value = token.substr(equals + 1);
    if (key == "endpoint") settings.endpoint = text_from_hex(value);
    else if (key == "curve_server_key") settings.curveServerKey = text_from_hex(value);
    else if (key == "curve_public_key") settings.curvePublicKey = text_from_hex(value);
    else if (key == "curve_secret_key") settings.curveSecretKey = text_from_hex(value);
    else if (key == "client") settings.hello.client = text_from_hex(value);
    else if (key == "symbol") settings.hello.symbol = text_from_hex(value);
    else if (key == "timeframe") settings.hello.timeframe = text_from_hex(value);
    else if (key == "period") settings.period = static_cast<ENUM_TIMEFRAMES>(std::stoi(value));
    else if (key == "digits") settings.hello.digits = std::stoi(value);
    else if (key == "point") settings.hello.point = std::stod(value);
    else if (key == "utc_offset") settings.hello.utcOffset = std::stoi(value);
    else if (key == "history_bars") settings.historyBars = std::stoi(value);
    else if (key == "reply_timeout_ms") settings.replyTimeoutMs = static_cast<uint>(std::stoul(value));
    else if (key == "backfill_timeout_ms") settings.backfillTimeoutMs = static_cast<uint>(std::stoul(value));
    else if (key == "reconnect_min_ms") settings.reconnectMinMs = static_cast<uint>(std::stoul(value));
    else if (key == "reconnect_max_ms") settings.reconnectMaxMs = static_cast<uint>(std::stoul(value));
    else if (key == "poll_timeout_ms") settings.pollTimeoutMs = static_cast<uint>(std::stoul(value));
    else if (key == "status_refresh_ms") settings.statusRefreshMs = static_cast<uint>(std::stoul(value));
    else mql5_fatal("unknown init argument: " + key);
  }
  delete client;
  client = new SigBridgeClient();
  bool ok = client->init(settings);
  done(Json().boolean("ok", ok));
}

static void command_bar(std::istringstream &arguments) {
  MqlRates rates{};
  arguments >> rates.time >> rates.open >> rates.high >> rates.low >> rates.close >> rates.tick_volume >>
      rates.spread >> rates.real_volume;
  if (!arguments) mql5_fatal("bar needs: time open high low close tick_volume spread real_volume");
  mql5_chart.bars.push_back(rates);
  done(Json().number("bars", static_cast<long long>(mql5_chart.bars.size())));
}

static void command_decode(const std::string &hex) {
  std::string bytes;
  if (!harness_unhex(hex, bytes)) mql5_fatal("decode needs hex bytes");
  MqlArray<uchar> payload;
  ArrayResize(payload, static_cast<int>(bytes.size()));
  for (size_t i = 0; i < bytes.size(); i++) payload[static_cast<long>(i)] = static_cast<uchar>(bytes[i]);
  SigBridgeReply reply;
  string error;
  bool ok = SigBridgeParseReply(payload, ArraySize(payload), reply, error);

  Json json;
  json.boolean("ok", ok).text("error", error);
  if (ok) {
    json.text("type", reply.type)
        .field("id", reply.hasId ? std::to_string(reply.id) : "null")
        .text("symbol", reply.symbol)
        .text("timeframe", reply.timeframe)
        .field("model_version", reply.hasModelVersion ? std::to_string(reply.modelVersion) : "null")
        .text("state", reply.state)
        .text("message", reply.message)
        .number("bars_held", reply.barsHeld)
        .number("bars_needed", reply.barsNeeded)
        .field("last_bar_time", reply.hasLastBarTime ? std::to_string(reply.lastBarTime) : "null")
        .text("server", reply.server)
        .number("max_bars_per_message", reply.maxBarsPerMessage)
        .number("accepted", reply.accepted)
        .number("duplicates", reply.duplicates)
        .number("bar_time", reply.barTime)
        .number("direction", reply.direction)
        .real("score", reply.score)
        .real("distance", reply.distance)
        .number("latency_us", reply.latencyUs)
        .number("code", reply.errorCode)
        .text("name", reply.errorName)
        .field("field", reply.hasErrorField ? Json::quote(reply.errorField.utf8()) : "null")
        .real("time", reply.serverTime);
  }
  done(json);
}

static void command_encode_bars(std::istringstream &arguments) {
  long long id = 0;
  int start = 0;
  int count = 0;
  arguments >> id >> start >> count;
  MqlArray<MqlRates> rates;
  for (const MqlRates &bar : mql5_chart.bars) rates.items.push_back(bar);
  MsgpackWriter writer;
  bool ok = SigBridgeBuildBars(writer, id, mql5_chart.symbol, SigBridgeTimeframeName(mql5_chart.period), rates, start, count);
  done(Json().boolean("ok", ok).text("hex", writer.toHex()));
}

static void command_timeframes() {
  static const ENUM_TIMEFRAMES periods[] = {
      PERIOD_CURRENT, PERIOD_M1, PERIOD_M2, PERIOD_M3, PERIOD_M4, PERIOD_M5, PERIOD_M6, PERIOD_M10,
      PERIOD_M12, PERIOD_M15, PERIOD_M20, PERIOD_M30, PERIOD_H1, PERIOD_H2, PERIOD_H3, PERIOD_H4,
      PERIOD_H6, PERIOD_H8, PERIOD_H12, PERIOD_D1, PERIOD_W1, PERIOD_MN1};
  Json names;
  for (ENUM_TIMEFRAMES period : periods) names.text(std::to_string(static_cast<int>(period)), SigBridgeTimeframeName(period));
  done(Json().field("names", names.str()));
}

int main() {
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream arguments(line);
    std::string command;
    arguments >> command;
    if (command == "chart") {
      std::string symbol;
      int period = 0;
      arguments >> symbol >> period;
      mql5_chart.symbol = text_from_hex(symbol);
      mql5_chart.period = static_cast<ENUM_TIMEFRAMES>(period);
      mql5_chart.bars.clear();
      done(Json());
    } else if (command == "bar") {
      command_bar(arguments);
    } else if (command == "init") {
      command_init(arguments);
    } else if (command == "process") {
      client->process();
      done(Json().field("client", client_state_json()));
    } else if (command == "sync") {
      uint timeout_ms = 0;
      arguments >> timeout_ms;
      bool synced = client->waitForSync(timeout_ms);
      done(Json().boolean("synced", synced).field("client", client_state_json()));
    } else if (command == "take_signal") {
      SigBridgeSignal signal;
      bool fresh = client->takeSignal(signal);
      done(Json().boolean("new", fresh).number("bar_time", fresh ? signal.barTime : 0));
    } else if (command == "state") {
      done(Json().field("client", client_state_json()));
    } else if (command == "shutdown") {
      client->shutdown();
      done(Json().field("client", client_state_json()));
    } else if (command == "selftest") {
      int checks = 0;
      int failures = SigBridgeRunSelfTest(checks);
      done(Json().number("checks", checks).number("failures", failures));
    } else if (command == "script") {
      OnStart();
      done(Json());
    } else if (command == "decode") {
      std::string hex;
      arguments >> hex;
      command_decode(hex);
    } else if (command == "encode_bars") {
      command_encode_bars(arguments);
    } else if (command == "timeframes") {
      command_timeframes();
    } else if (command == "quit") {
      if (client != nullptr) client->shutdown();
      delete client;
      client = nullptr;
      done(Json());
      return 0;
    } else {
      mql5_fatal("unknown harness command: " + line);
    }
  }
  return 0;
}
