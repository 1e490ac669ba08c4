//+------------------------------------------------------------------+
//| Protocol.mqh                                                     |
//| sigbridge protocol version 1: constants and request builders.    |
//| A request is one msgpack map: `v` (protocol version), `id` (the  |
//| request id the reply echoes), `type`, then the fields of the     |
//| type, in the order the Python reference client sends them.       |
//+------------------------------------------------------------------+
#include "MsgpackWriter.mqh"

#define SIGBRIDGE_PROTOCOL_VERSION 1

//--- Error reply codes, as sigbridge/daemon/codes.py defines them.
enum ENUM_SIGBRIDGE_ERROR
  {
   SIGBRIDGE_ERROR_NONE=0,
   SIGBRIDGE_ERROR_MALFORMED=1,
   SIGBRIDGE_ERROR_UNSUPPORTED_VERSION=2,
   SIGBRIDGE_ERROR_UNKNOWN_TYPE=3,
   SIGBRIDGE_ERROR_INVALID_FIELD=4,
   SIGBRIDGE_ERROR_UNKNOWN_STREAM=5,
   SIGBRIDGE_ERROR_BARS_OUT_OF_ORDER=6,
   SIGBRIDGE_ERROR_INVALID_BAR=7,
   SIGBRIDGE_ERROR_MESSAGE_TOO_LARGE=8,
   SIGBRIDGE_ERROR_TOO_MANY_STREAMS=9,
   SIGBRIDGE_ERROR_BAR_CONFLICT=10,
   SIGBRIDGE_ERROR_MODEL_NOT_FOUND=11,
   SIGBRIDGE_ERROR_CONTROL_FAILED=12,
   SIGBRIDGE_ERROR_CONTROL_REJECTED=13,
   SIGBRIDGE_ERROR_INTERNAL_ERROR=99
  };

//--- Longest client name and symbol the daemon accepts, in characters.
#define SIGBRIDGE_MAX_CLIENT_LENGTH 64
#define SIGBRIDGE_MAX_SYMBOL_LENGTH 32

//+------------------------------------------------------------------+
//| Fields of a `hello` request besides the envelope.                |
//+------------------------------------------------------------------+
struct SigBridgeHello
  {
   string            client;     // client name; streams are keyed by it, so keep it stable
   string            symbol;
   string            timeframe;  // protocol name such as "H1", see SigBridgeTimeframeName()
   int               digits;
   double            point;
   int               utcOffset;  // broker server time minus UTC, in seconds
  };

//+------------------------------------------------------------------+
//| Protocol name of a timeframe: ENUM_TIMEFRAMES without PERIOD_.   |
//| Returns "" for PERIOD_CURRENT; resolve it with Period() first.   |
//+------------------------------------------------------------------+
string SigBridgeTimeframeName(const ENUM_TIMEFRAMES period)
  {
   switch(period)
     {
      case PERIOD_M1:
         return("M1");
      case PERIOD_M2:
         return("M2");
      case PERIOD_M3:
         return("M3");
      case PERIOD_M4:
         return("M4");
      case PERIOD_M5:
         return("M5");
      case PERIOD_M6:
         return("M6");
      case PERIOD_M10:
         return("M10");
      case PERIOD_M12:
         return("M12");
      case PERIOD_M15:
         return("M15");
      case PERIOD_M20:
         return("M20");
      case PERIOD_M30:
         return("M30");
      case PERIOD_H1:
         return("H1");
      case PERIOD_H2:
         return("H2");
      case PERIOD_H3:
         return("H3");
      case PERIOD_H4:
         return("H4");
      case PERIOD_H6:
         return("H6");
      case PERIOD_H8:
         return("H8");
      case PERIOD_H12:
         return("H12");
      case PERIOD_D1:
         return("D1");
      case PERIOD_W1:
         return("W1");
      case PERIOD_MN1:
         return("MN1");
      default:
         break;
     }
   return("");
  }
//+------------------------------------------------------------------+
//| Name of an error code, as the daemon sends it in `name`.         |
//+------------------------------------------------------------------+
string SigBridgeErrorName(const int code)
  {
   switch(code)
     {
      case SIGBRIDGE_ERROR_MALFORMED:
         return("MALFORMED");
      case SIGBRIDGE_ERROR_UNSUPPORTED_VERSION:
         return("UNSUPPORTED_VERSION");
      case SIGBRIDGE_ERROR_UNKNOWN_TYPE:
         return("UNKNOWN_TYPE");
      case SIGBRIDGE_ERROR_INVALID_FIELD:
         return("INVALID_FIELD");
      case SIGBRIDGE_ERROR_UNKNOWN_STREAM:
         return("UNKNOWN_STREAM");
      case SIGBRIDGE_ERROR_BARS_OUT_OF_ORDER:
         return("BARS_OUT_OF_ORDER");
      case SIGBRIDGE_ERROR_INVALID_BAR:
         return("INVALID_BAR");
      case SIGBRIDGE_ERROR_MESSAGE_TOO_LARGE:
         return("MESSAGE_TOO_LARGE");
      case SIGBRIDGE_ERROR_TOO_MANY_STREAMS:
         return("TOO_MANY_STREAMS");
      case SIGBRIDGE_ERROR_BAR_CONFLICT:
         return("BAR_CONFLICT");
      case SIGBRIDGE_ERROR_MODEL_NOT_FOUND:
         return("MODEL_NOT_FOUND");
      case SIGBRIDGE_ERROR_CONTROL_FAILED:
         return("CONTROL_FAILED");
      case SIGBRIDGE_ERROR_CONTROL_REJECTED:
         return("CONTROL_REJECTED");
      case SIGBRIDGE_ERROR_INTERNAL_ERROR:
         return("INTERNAL_ERROR");
      default:
         break;
     }
   return(StringFormat("UNKNOWN_ERROR_%d",code));
  }
//+------------------------------------------------------------------+
//| Writes the envelope shared by all requests: v, id and type.      |
//| `fields` is the number of map entries that follow the envelope.  |
//+------------------------------------------------------------------+
void SigBridgeWriteEnvelope(MsgpackWriter &writer,const long id,const string type,const int fields)
  {
   writer.reset();
   writer.writeMapHeader(3+fields);
   writer.writeString("v");
   writer.writeInt(SIGBRIDGE_PROTOCOL_VERSION);
   writer.writeString("id");
   writer.writeInt(id);
   writer.writeString("type");
   writer.writeString(type);
  }
//+------------------------------------------------------------------+
//| Encodes a `hello` request into `writer`.                         |
//+------------------------------------------------------------------+
bool SigBridgeBuildHello(MsgpackWriter &writer,const long id,const SigBridgeHello &hello)
  {
   SigBridgeWriteEnvelope(writer,id,"hello",6);
   writer.writeString("client");
   writer.writeString(hello.client);
   writer.writeString("symbol");
   writer.writeString(hello.symbol);
   writer.writeString("timeframe");
   writer.writeString(hello.timeframe);
   writer.writeString("digits");
   writer.writeInt(hello.digits);
   writer.writeString("point");
   writer.writeDouble(hello.point);
   writer.writeString("utc_offset");
   writer.writeInt(hello.utcOffset);
   return(!writer.failed());
  }
//+------------------------------------------------------------------+
//| Encodes a `bars` request for `count` closed bars of `rates`      |
//| from index `start`, oldest first, as columns. `volume` carries   |
//| MqlRates.real_volume, which forex brokers report as 0.           |
//+------------------------------------------------------------------+
bool SigBridgeBuildBars(MsgpackWriter &writer,const long id,const string symbol,const string timeframe,
                        const MqlRates &rates[],const int start,const int count)
  {
   if(start<0 || count<1 || start+count>ArraySize(rates))
     {
      PrintFormat("SigBridge: invalid bar range start=%d count=%d for %d bars",start,count,ArraySize(rates));
      return(false);
     }
   int last=start+count;
   SigBridgeWriteEnvelope(writer,id,"bars",10);
   writer.writeString("symbol");
   writer.writeString(symbol);
   writer.writeString("timeframe");
   writer.writeString(timeframe);

   writer.writeString("time");
   writer.writeArrayHeader(count);
   for(int i=start; i<last; i++)
      writer.writeInt((long)rates[i].time);
   writer.writeString("open");
   writer.writeArrayHeader(count);
   for(int i=start; i<last; i++)
      writer.writeDouble(rates[i].open);
   writer.writeString("high");
   writer.writeArrayHeader(count);
   for(int i=start; i<last; i++)
      writer.writeDouble(rates[i].high);
   writer.writeString("low");
   writer.writeArrayHeader(count);
   for(int i=start; i<last; i++)
      writer.writeDouble(rates[i].low);
   writer.writeString("close");
   writer.writeArrayHeader(count);
   for(int i=start; i<last; i++)
      writer.writeDouble(rates[i].close);

   writer.writeString("tick_volume");
   writer.writeArrayHeader(count);
   for(int i=start; i<last; i++)
      writer.writeInt(rates[i].tick_volume);
   writer.writeString("spread");
   writer.writeArrayHeader(count);
   for(int i=start; i<last; i++)
      writer.writeInt(rates[i].spread);
   writer.writeString("volume");
   writer.writeArrayHeader(count);
   for(int i=start; i<last; i++)
      writer.writeInt(rates[i].real_volume);
   return(!writer.failed());
  }
//+------------------------------------------------------------------+
//| Encodes a `ping` request.                                        |
//+------------------------------------------------------------------+
bool SigBridgeBuildPing(MsgpackWriter &writer,const long id)
  {
   SigBridgeWriteEnvelope(writer,id,"ping",0);
   return(!writer.failed());
  }
//+------------------------------------------------------------------+
