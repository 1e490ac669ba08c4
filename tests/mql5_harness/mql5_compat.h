// MQL5 types and built-in functions for compiling the sigbridge include files with g++.
//
// Only what the include files use is here. Where the code depends on it, the behaviour is
// MetaTrader 5's: strings are UTF-16, StringToCharArray() copies the terminating zero,
// PrintFormat() needs %I64d for 64-bit integers, and an array index out of range stops the
// program. Anything the harness cannot emulate faithfully aborts with a message, so a test
// fails instead of passing on behaviour MetaTrader would not show.
#pragma once

#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cctype>
#include <ctime>
#include <deque>
#include <string>
#include <type_traits>
#include <vector>

typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
typedef long datetime;

static_assert(sizeof(long) == 8, "MQL5 long is 64 bits; build the harness on an LP64 platform");

// Called for every Print()/PrintFormat() line; harness_main.cpp forwards it to the driver.
void mql5_emit_log(const std::string &line);

[[noreturn]] inline void mql5_fatal(const std::string &message) {
  std::fprintf(stderr, "MQL5 runtime error: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

// ---------------------------------------------------------------------------------------------
// string: a UTF-16 string as in MQL5.

std::u16string mql5_utf8_to_utf16(const std::string &utf8);
std::string mql5_utf16_to_utf8(const std::u16string &utf16);

class string {
 public:
  std::u16string units;

  string() {}
  string(const char *utf8) : units(mql5_utf8_to_utf16(utf8)) {}
  explicit string(const std::u16string &utf16) : units(utf16) {}

  std::string utf8() const { return mql5_utf16_to_utf8(units); }

  string &operator+=(const string &other) {
    units += other.units;
    return *this;
  }
  friend string operator+(const string &left, const string &right) {
    return string(left.units + right.units);
  }
  friend bool operator==(const string &left, const string &right) { return left.units == right.units; }
  friend bool operator!=(const string &left, const string &right) { return left.units != right.units; }
  friend bool operator<(const string &left, const string &right) { return left.units < right.units; }
  friend bool operator>(const string &left, const string &right) { return left.units > right.units; }
};

// ---------------------------------------------------------------------------------------------
// Dynamic arrays (`T name[]` in MQL5).

template <typename T>
class MqlArray {
  // std::vector<bool> hands out proxies, but MQL5 passes bool elements by reference.
  using Storage = typename std::conditional<std::is_same<T, bool>::value, std::deque<bool>, std::vector<T>>::type;

 public:
  Storage items;

  T &operator[](long index) {
    check(index);
    return items[static_cast<size_t>(index)];
  }
  const T &operator[](long index) const {
    check(index);
    return items[static_cast<size_t>(index)];
  }

 private:
  void check(long index) const {
    if (index < 0 || index >= static_cast<long>(items.size()))
      mql5_fatal("array out of range: index " + std::to_string(index) + ", size " + std::to_string(items.size()));
  }
};

#define WHOLE_ARRAY (-1)

template <typename T>
int ArraySize(const MqlArray<T> &array) {
  return static_cast<int>(array.items.size());
}
template <typename T, size_t N>
int ArraySize(const T (&)[N]) {
  return static_cast<int>(N);
}
template <typename T>
int ArrayResize(MqlArray<T> &array, int new_size, int reserve_size = 0) {
  (void)reserve_size;
  if (new_size < 0) return -1;
  array.items.resize(static_cast<size_t>(new_size));
  return new_size;
}
template <typename T>
void ArrayFree(MqlArray<T> &array) {
  array.items.clear();
}
// Copies `count` elements (WHOLE_ARRAY: the rest of `source`); a dynamic target grows to fit.
template <typename T>
int ArrayCopy(MqlArray<T> &target, const MqlArray<T> &source, int target_start = 0, int source_start = 0,
              int count = WHOLE_ARRAY) {
  int available = ArraySize(source) - source_start;
  if (source_start < 0 || target_start < 0 || available < 0) return 0;
  if (count < 0 || count > available) count = available;
  if (ArraySize(target) < target_start + count) ArrayResize(target, target_start + count);
  for (int i = 0; i < count; i++) target.items[target_start + i] = source.items[source_start + i];
  return count;
}

// ---------------------------------------------------------------------------------------------
// Errors, time, math.

extern int _LastError;
inline int GetLastError() { return _LastError; }
inline void ResetLastError() { _LastError = 0; }
void SetUserError(ushort code);

#define ERR_MARKET_UNKNOWN_SYMBOL 4301
#define ERR_HISTORY_NOT_FOUND 4401
#define ERR_ARRAY_RESIZE_ERROR 4007

inline ulong GetTickCount64() {
  using namespace std::chrono;
  return static_cast<ulong>(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}
inline uint GetTickCount() { return static_cast<uint>(GetTickCount64()); }

template <typename T>
T MathAbs(T value) {
  return value < 0 ? -value : value;
}
inline bool MathIsValidNumber(double value) { return std::isfinite(value); }

// ---------------------------------------------------------------------------------------------
// Text conversion.

#define CP_ACP 0
#define CP_UTF8 65001

int StringToCharArray(const string &text, MqlArray<uchar> &array, int start = 0, int count = -1,
                      uint codepage = CP_ACP);
string CharArrayToString(const MqlArray<uchar> &array, int start = 0, int count = -1, uint codepage = CP_ACP);
string ShortArrayToString(const ushort *units, int size, int start, int count);
template <size_t N>
string ShortArrayToString(const ushort (&units)[N], int start = 0, int count = -1) {
  return ShortArrayToString(units, static_cast<int>(N), start, count);
}
inline int StringLen(const string &text) { return static_cast<int>(text.units.size()); }
inline ushort StringGetCharacter(const string &text, int position) {
  if (position < 0 || position >= StringLen(text)) return 0;
  return text.units[static_cast<size_t>(position)];
}
inline string StringSubstr(const string &text, int start, int length = -1) {
  int size = StringLen(text);
  if (start < 0 || start >= size) return string();
  size_t count = (length < 0 || start + length > size) ? std::u16string::npos : static_cast<size_t>(length);
  return string(text.units.substr(static_cast<size_t>(start), count));
}
string IntegerToString(long value, int length = 0, ushort fill = ' ');
string DoubleToString(double value, int digits = 8);

#define TIME_DATE 1
#define TIME_MINUTES 2
#define TIME_SECONDS 4
string TimeToString(datetime value, int mode = TIME_DATE | TIME_MINUTES);

// ---------------------------------------------------------------------------------------------
// StringFormat / PrintFormat / Print with MQL5's type rules.

struct Mql5FormatArgument {
  enum Kind { SIGNED, UNSIGNED, REAL, TEXT } kind;
  int bits;
  long long signed_value;
  unsigned long long unsigned_value;
  double real_value;
  std::string text;
};

template <typename T>
Mql5FormatArgument mql5_format_argument(const T &value) {
  Mql5FormatArgument argument{};
  if constexpr (std::is_same<T, string>::value) {
    argument.kind = Mql5FormatArgument::TEXT;
    argument.text = value.utf8();
  } else if constexpr (std::is_convertible<T, const char *>::value) {
    argument.kind = Mql5FormatArgument::TEXT;
    argument.text = value;
  } else if constexpr (std::is_floating_point<T>::value) {
    argument.kind = Mql5FormatArgument::REAL;
    argument.real_value = static_cast<double>(value);
  } else if constexpr (std::is_enum<T>::value) {
    argument.kind = Mql5FormatArgument::SIGNED;
    argument.bits = 32;
    argument.signed_value = static_cast<long long>(value);
  } else if constexpr (std::is_integral<T>::value) {
    // Types below 32 bits are promoted to int, as in a C variadic call.
    argument.bits = sizeof(T) == 8 ? 64 : 32;
    if (std::is_signed<T>::value || sizeof(T) < 4) {
      argument.kind = Mql5FormatArgument::SIGNED;
      argument.signed_value = static_cast<long long>(value);
    } else {
      argument.kind = Mql5FormatArgument::UNSIGNED;
      argument.unsigned_value = static_cast<unsigned long long>(value);
    }
  } else {
    static_assert(sizeof(T) == 0, "unsupported StringFormat argument type");
  }
  return argument;
}

std::string mql5_format(const std::string &format, const std::vector<Mql5FormatArgument> &arguments);
std::string mql5_print_text(const Mql5FormatArgument &argument);

template <typename... Arguments>
string StringFormat(const string &format, const Arguments &...arguments) {
  std::vector<Mql5FormatArgument> list{mql5_format_argument(arguments)...};
  return string(mql5_utf8_to_utf16(mql5_format(format.utf8(), list)));
}
template <typename... Arguments>
void PrintFormat(const string &format, const Arguments &...arguments) {
  std::vector<Mql5FormatArgument> list{mql5_format_argument(arguments)...};
  mql5_emit_log(mql5_format(format.utf8(), list));
}
template <typename... Arguments>
void Print(const Arguments &...arguments) {
  std::string line;
  for (const Mql5FormatArgument &argument : {mql5_format_argument(arguments)...}) line += mql5_print_text(argument);
  mql5_emit_log(line);
}

// ---------------------------------------------------------------------------------------------
// Timeframes and the chart history that CopyRates() and iTime() read.

enum ENUM_TIMEFRAMES {
  PERIOD_CURRENT = 0,
  PERIOD_M1 = 1,
  PERIOD_M2 = 2,
  PERIOD_M3 = 3,
  PERIOD_M4 = 4,
  PERIOD_M5 = 5,
  PERIOD_M6 = 6,
  PERIOD_M10 = 10,
  PERIOD_M12 = 12,
  PERIOD_M15 = 15,
  PERIOD_M20 = 20,
  PERIOD_M30 = 30,
  PERIOD_H1 = 16385,
  PERIOD_H2 = 16386,
  PERIOD_H3 = 16387,
  PERIOD_H4 = 16388,
  PERIOD_H6 = 16390,
  PERIOD_H8 = 16392,
  PERIOD_H12 = 16396,
  PERIOD_D1 = 16408,
  PERIOD_W1 = 32769,
  PERIOD_MN1 = 49153,
};

struct MqlRates {
  datetime time;
  double open;
  double high;
  double low;
  double close;
  long tick_volume;
  int spread;
  long real_volume;
};

// The one chart the harness simulates: bars oldest first; the last one is the forming bar.
struct Mql5Chart {
  string symbol;
  ENUM_TIMEFRAMES period = PERIOD_H1;
  std::vector<MqlRates> bars;
};
extern Mql5Chart mql5_chart;

int CopyRates(const string &symbol, ENUM_TIMEFRAMES timeframe, int start_position, int count,
              MqlArray<MqlRates> &rates);
datetime iTime(const string &symbol, ENUM_TIMEFRAMES timeframe, int shift);
