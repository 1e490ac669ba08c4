// Implementation of the MQL5 built-ins declared in mql5_compat.h.
#include "mql5_compat.h"

int _LastError = 0;
Mql5Chart mql5_chart;

void SetUserError(ushort code) { _LastError = 65536 + code; }

// ---------------------------------------------------------------------------------------------
// UTF-8 <-> UTF-16. Invalid input becomes U+FFFD, as Windows' MultiByteToWideChar does.

std::u16string mql5_utf8_to_utf16(const std::string &utf8) {
  std::u16string result;
  size_t i = 0;
  const size_t size = utf8.size();
  while (i < size) {
    unsigned char lead = static_cast<unsigned char>(utf8[i]);
    uint32_t code = 0xFFFD;
    size_t length = 1;
    uint32_t minimum = 0;
    if (lead < 0x80) {
      code = lead;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2, code = lead & 0x1F, minimum = 0x80;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3, code = lead & 0x0F, minimum = 0x800;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4, code = lead & 0x07, minimum = 0x10000;
    } else {
      length = 0;
    }
    bool valid = length > 0 && i + length <= size;
    for (size_t k = 1; valid && k < length; k++) {
      unsigned char next = static_cast<unsigned char>(utf8[i + k]);
      if ((next & 0xC0) != 0x80) valid = false;
      code = (code << 6) | (next & 0x3F);
    }
    if (valid && length > 1 && (code < minimum || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)))
      valid = false;
    if (!valid) {
      result.push_back(0xFFFD);
      i += 1;
      continue;
    }
    if (code >= 0x10000) {
      code -= 0x10000;
      result.push_back(static_cast<char16_t>(0xD800 + (code >> 10)));
      result.push_back(static_cast<char16_t>(0xDC00 + (code & 0x3FF)));
    } else {
      result.push_back(static_cast<char16_t>(code));
    }
    i += length;
  }
  return result;
}

std::string mql5_utf16_to_utf8(const std::u16string &utf16) {
  std::string result;
  for (size_t i = 0; i < utf16.size(); i++) {
    uint32_t code = utf16[i];
    if (code >= 0xD800 && code <= 0xDBFF && i + 1 < utf16.size() && utf16[i + 1] >= 0xDC00 &&
        utf16[i + 1] <= 0xDFFF) {
      code = 0x10000 + ((code - 0xD800) << 10) + (utf16[i + 1] - 0xDC00);
      i++;
    } else if (code >= 0xD800 && code <= 0xDFFF) {
      code = 0xFFFD;  // an unpaired surrogate
    }
    if (code < 0x80) {
      result.push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      result.push_back(static_cast<char>(0xC0 | (code >> 6)));
      result.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      result.push_back(static_cast<char>(0xE0 | (code >> 12)));
      result.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      result.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      result.push_back(static_cast<char>(0xF0 | (code >> 18)));
      result.push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      result.push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      result.push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }
  return result;
}

// MetaTrader copies the terminating zero as well and returns the count including it.
int StringToCharArray(const string &text, MqlArray<uchar> &array, int start, int count, uint codepage) {
  if (codepage != CP_UTF8) mql5_fatal("the harness implements StringToCharArray() for CP_UTF8 only");
  if (count != -1) mql5_fatal("the harness implements StringToCharArray() for count=-1 (the whole string) only");
  std::string bytes = text.utf8();
  int needed = start + static_cast<int>(bytes.size()) + 1;
  if (ArraySize(array) < needed) ArrayResize(array, needed);
  for (size_t i = 0; i < bytes.size(); i++) array[start + static_cast<long>(i)] = static_cast<uchar>(bytes[i]);
  array[needed - 1] = 0;
  return static_cast<int>(bytes.size()) + 1;
}

string CharArrayToString(const MqlArray<uchar> &array, int start, int count, uint codepage) {
  if (codepage != CP_UTF8) mql5_fatal("the harness implements CharArrayToString() for CP_UTF8 only");
  int size = ArraySize(array);
  if (start < 0 || start > size) return string();
  int end = (count < 0 || start + count > size) ? size : start + count;
  std::string bytes;
  for (int i = start; i < end && array[i] != 0; i++) bytes.push_back(static_cast<char>(array[i]));
  return string(mql5_utf8_to_utf16(bytes));
}

string ShortArrayToString(const ushort *units, int size, int start, int count) {
  int end = (count < 0 || start + count > size) ? size : start + count;
  std::u16string text;
  for (int i = start; i < end && units[i] != 0; i++) text.push_back(static_cast<char16_t>(units[i]));
  return string(text);
}

string IntegerToString(long value, int length, ushort fill) {
  std::string text = std::to_string(value);
  while (static_cast<int>(text.size()) < length) text.insert(text.begin(), static_cast<char>(fill));
  return string(text.c_str());
}

string DoubleToString(double value, int digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
  return string(buffer);
}

string TimeToString(datetime value, int mode) {
  std::time_t seconds = static_cast<std::time_t>(value);
  std::tm parts{};
  gmtime_r(&seconds, &parts);
  char buffer[64];
  std::string text;
  if (mode & TIME_DATE) {
    std::strftime(buffer, sizeof buffer, "%Y.%m.%d", &parts);
    text += buffer;
  }
  if (mode & (TIME_MINUTES | TIME_SECONDS)) {
    std::strftime(buffer, sizeof buffer, (mode & TIME_SECONDS) ? "%H:%M:%S" : "%H:%M", &parts);
    if (!text.empty()) text += " ";
    text += buffer;
  }
  return string(text.c_str());
}

// ---------------------------------------------------------------------------------------------
// Formatting. MetaTrader reads a 64-bit integer only with the I64 prefix (%I64d, %I64u, %I64x);
// a mismatch prints garbage there, so here it stops the program.

static const char *kind_name(const Mql5FormatArgument &argument) {
  switch (argument.kind) {
    case Mql5FormatArgument::SIGNED:
      return argument.bits == 64 ? "a 64-bit signed integer" : "a 32-bit signed integer";
    case Mql5FormatArgument::UNSIGNED:
      return argument.bits == 64 ? "a 64-bit unsigned integer" : "a 32-bit unsigned integer";
    case Mql5FormatArgument::REAL:
      return "a double";
    case Mql5FormatArgument::TEXT:
      return "a string";
  }
  return "an unknown type";
}

std::string mql5_format(const std::string &format, const std::vector<Mql5FormatArgument> &arguments) {
  std::string result;
  size_t next = 0;
  size_t i = 0;
  while (i < format.size()) {
    char character = format[i];
    if (character != '%') {
      result.push_back(character);
      i++;
      continue;
    }
    if (i + 1 < format.size() && format[i + 1] == '%') {
      result.push_back('%');
      i += 2;
      continue;
    }
    size_t begin = i++;
    std::string flags;
    while (i < format.size() && std::string("-+ 0#").find(format[i]) != std::string::npos) flags += format[i++];
    std::string width;
    while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i]))) width += format[i++];
    std::string precision;
    if (i < format.size() && format[i] == '.') {
      precision += format[i++];
      while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i]))) precision += format[i++];
    }
    bool wide = false;
    if (format.compare(i, 3, "I64") == 0) {
      wide = true;
      i += 3;
    } else if (i < format.size() && (format[i] == 'l' || format[i] == 'h')) {
      mql5_fatal("format \"" + format + "\": MQL5 has no l or h length modifiers; use I64 for 64-bit integers");
    }
    if (i >= format.size()) mql5_fatal("format \"" + format + "\" ends inside a conversion");
    char conversion = format[i++];
    std::string spec = format.substr(begin, i - begin);
    if (next >= arguments.size()) mql5_fatal("format \"" + format + "\" has more conversions than arguments");
    const Mql5FormatArgument &argument = arguments[next++];
    std::string base = "%" + flags + width + precision;
    char buffer[512];
    switch (conversion) {
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o':
      case 'c': {
        bool integer = argument.kind == Mql5FormatArgument::SIGNED || argument.kind == Mql5FormatArgument::UNSIGNED;
        if (!integer) mql5_fatal("format \"" + format + "\": " + spec + " receives " + kind_name(argument));
        if (conversion != 'c' && wide != (argument.bits == 64))
          mql5_fatal("format \"" + format + "\": " + spec + " receives " + kind_name(argument) +
                     (wide ? "; use the conversion without I64" : "; use the I64 prefix"));
        unsigned long long bits = argument.kind == Mql5FormatArgument::SIGNED
                                      ? static_cast<unsigned long long>(argument.signed_value)
                                      : argument.unsigned_value;
        if (conversion == 'c') {
          std::snprintf(buffer, sizeof buffer, (base + "c").c_str(), static_cast<int>(bits));
        } else if (conversion == 'd' || conversion == 'i') {
          long long value = argument.bits == 64 ? static_cast<long long>(bits) : static_cast<int>(bits);
          std::snprintf(buffer, sizeof buffer, (base + "lld").c_str(), value);
        } else {
          unsigned long long value = argument.bits == 64 ? bits : static_cast<unsigned int>(bits);
          std::snprintf(buffer, sizeof buffer, (base + "ll" + conversion).c_str(), value);
        }
        result += buffer;
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G':
      case 'a':
      case 'A':
        if (argument.kind != Mql5FormatArgument::REAL || wide)
          mql5_fatal("format \"" + format + "\": " + spec + " receives " + kind_name(argument));
        std::snprintf(buffer, sizeof buffer, (base + conversion).c_str(), argument.real_value);
        result += buffer;
        break;
      case 's':
        if (argument.kind != Mql5FormatArgument::TEXT || wide)
          mql5_fatal("format \"" + format + "\": " + spec + " receives " + kind_name(argument));
        if (flags.empty() && width.empty() && precision.empty()) {
          result += argument.text;
        } else {
          std::snprintf(buffer, sizeof buffer, (base + "s").c_str(), argument.text.c_str());
          result += buffer;
        }
        break;
      default:
        mql5_fatal("format \"" + format + "\": unsupported conversion " + spec);
    }
  }
  if (next != arguments.size())
    mql5_fatal("format \"" + format + "\" has " + std::to_string(next) + " conversions but " +
               std::to_string(arguments.size()) + " arguments");
  return result;
}

std::string mql5_print_text(const Mql5FormatArgument &argument) {
  char buffer[64];
  switch (argument.kind) {
    case Mql5FormatArgument::SIGNED:
      return std::to_string(argument.signed_value);
    case Mql5FormatArgument::UNSIGNED:
      return std::to_string(argument.unsigned_value);
    case Mql5FormatArgument::REAL:
      std::snprintf(buffer, sizeof buffer, "%.16g", argument.real_value);
      return buffer;
    case Mql5FormatArgument::TEXT:
      return argument.text;
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// Chart history. Shift 0 is the forming bar, the last element of mql5_chart.bars.

static bool chart_matches(const string &symbol, ENUM_TIMEFRAMES timeframe) {
  if (symbol != mql5_chart.symbol || timeframe != mql5_chart.period) {
    _LastError = ERR_MARKET_UNKNOWN_SYMBOL;
    return false;
  }
  return true;
}

// Copies up to `count` bars ending at shift `start_position`, oldest first, as MetaTrader does
// for an array that is not a series.
int CopyRates(const string &symbol, ENUM_TIMEFRAMES timeframe, int start_position, int count,
              MqlArray<MqlRates> &rates) {
  if (!chart_matches(symbol, timeframe)) return -1;
  int total = static_cast<int>(mql5_chart.bars.size());
  if (start_position < 0 || count <= 0 || start_position >= total) {
    _LastError = ERR_HISTORY_NOT_FOUND;
    return -1;
  }
  int newest = total - 1 - start_position;
  int oldest = newest - count + 1;
  if (oldest < 0) oldest = 0;
  int copied = newest - oldest + 1;
  ArrayResize(rates, copied);
  for (int i = 0; i < copied; i++) rates[i] = mql5_chart.bars[static_cast<size_t>(oldest + i)];
  return copied;
}

datetime iTime(const string &symbol, ENUM_TIMEFRAMES timeframe, int shift) {
  if (!chart_matches(symbol, timeframe)) return 0;
  int total = static_cast<int>(mql5_chart.bars.size());
  if (shift < 0 || shift >= total) {
    _LastError = ERR_HISTORY_NOT_FOUND;
    return 0;
  }
  return mql5_chart.bars[static_cast<size_t>(total - 1 - shift)].time;
}
