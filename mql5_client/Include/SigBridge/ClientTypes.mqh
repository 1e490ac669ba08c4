//+------------------------------------------------------------------+
//| ClientTypes.mqh                                                  |
//| Settings, states and signals of SigBridgeClient.                 |
//+------------------------------------------------------------------+
#include "Protocol.mqh"

//--- Length of a CURVE key in Z85 text, as `sigbridge keygen` prints it.
#define SIGBRIDGE_CURVE_KEY_LENGTH 40

//--- Connection states of SigBridgeClient.
enum ENUM_SIGBRIDGE_CLIENT_STATE
  {
   SIGBRIDGE_CLIENT_DISCONNECTED=0,    // no socket; connects once the reconnect delay has passed
   SIGBRIDGE_CLIENT_WAITING_WELCOME=1, // hello sent, welcome not yet received
   SIGBRIDGE_CLIENT_IDLE=2,            // nothing in flight
   SIGBRIDGE_CLIENT_WAITING_BARS=3     // bars sent, signal or status not yet received
  };

//+------------------------------------------------------------------+
//| Name of a client state, for logs and the chart comment.          |
//+------------------------------------------------------------------+
string SigBridgeClientStateName(const ENUM_SIGBRIDGE_CLIENT_STATE state)
  {
   switch(state)
     {
      case SIGBRIDGE_CLIENT_DISCONNECTED:
         return("disconnected");
      case SIGBRIDGE_CLIENT_WAITING_WELCOME:
         return("waiting_welcome");
      case SIGBRIDGE_CLIENT_IDLE:
         return("idle");
      case SIGBRIDGE_CLIENT_WAITING_BARS:
         return("waiting_bars");
      default:
         break;
     }
   return("unknown");
  }

//+------------------------------------------------------------------+
//| What SigBridgeClient needs to know; SigBridgeDefaultSettings()   |
//| fills in the defaults.                                           |
//+------------------------------------------------------------------+
struct SigBridgeSettings
  {
   string            endpoint;          // ZeroMQ endpoint of the daemon, e.g. tcp://127.0.0.1:5555
   string            curveServerKey;    // daemon's CURVE public key (40 Z85 characters); "" for no CURVE
   string            curvePublicKey;    // this client's CURVE public key
   string            curveSecretKey;    // this client's CURVE secret key
   SigBridgeHello    hello;             // client name, symbol, timeframe name, digits, point, UTC offset
   ENUM_TIMEFRAMES   period;            // chart timeframe the bars are read from; not PERIOD_CURRENT
   int               historyBars;       // most recent closed bars to backfill when the daemon lacks them
   uint              replyTimeoutMs;    // wait for the reply to hello or to one bar
   uint              backfillTimeoutMs; // wait for the reply to a message of several bars
   uint              reconnectMinMs;    // first reconnect delay; doubles after each failure
   uint              reconnectMaxMs;    // longest reconnect delay, also used after a rejected request
   uint              pollTimeoutMs;     // longest wait for a reply within one process() call
   uint              statusRefreshMs;   // hello interval while the daemon queues or trains a model
  };

//+------------------------------------------------------------------+
//| Fills `settings` with defaults for everything but the stream.    |
//+------------------------------------------------------------------+
void SigBridgeDefaultSettings(SigBridgeSettings &settings)
  {
   settings.endpoint="tcp://127.0.0.1:5555";
   settings.curveServerKey="";
   settings.curvePublicKey="";
   settings.curveSecretKey="";
   settings.hello.client="";
   settings.hello.symbol="";
   settings.hello.timeframe="";
   settings.hello.digits=0;
   settings.hello.point=0.0;
   settings.hello.utcOffset=0;
   settings.period=PERIOD_H1;
   settings.historyBars=5000;
   settings.replyTimeoutMs=3000;
   settings.backfillTimeoutMs=20000;
   settings.reconnectMinMs=1000;
   settings.reconnectMaxMs=30000;
   settings.pollTimeoutMs=5;
   settings.statusRefreshMs=5000;
  }

//+------------------------------------------------------------------+
//| Returns "" when `settings` can be used, else what is wrong.      |
//+------------------------------------------------------------------+
string SigBridgeValidateSettings(const SigBridgeSettings &settings)
  {
   if(StringLen(settings.endpoint)==0)
      return("endpoint is empty; set it to the daemon's address, e.g. tcp://127.0.0.1:5555");
   bool curve=(settings.curveServerKey!="" || settings.curvePublicKey!="" || settings.curveSecretKey!="");
   if(curve && (StringLen(settings.curveServerKey)!=SIGBRIDGE_CURVE_KEY_LENGTH ||
                StringLen(settings.curvePublicKey)!=SIGBRIDGE_CURVE_KEY_LENGTH ||
                StringLen(settings.curveSecretKey)!=SIGBRIDGE_CURVE_KEY_LENGTH))
      return(StringFormat("CURVE needs the server public key and the client key pair, %d Z85 characters each, "
                          "received %d, %d and %d characters; leave all three empty for no CURVE",
                          SIGBRIDGE_CURVE_KEY_LENGTH,StringLen(settings.curveServerKey),
                          StringLen(settings.curvePublicKey),StringLen(settings.curveSecretKey)));
   int clientLength=StringLen(settings.hello.client);
   if(clientLength==0 || clientLength>SIGBRIDGE_MAX_CLIENT_LENGTH)
      return(StringFormat("client name must have 1 to %d characters, received %d",
                          SIGBRIDGE_MAX_CLIENT_LENGTH,clientLength));
   int symbolLength=StringLen(settings.hello.symbol);
   if(symbolLength==0 || symbolLength>SIGBRIDGE_MAX_SYMBOL_LENGTH)
      return(StringFormat("symbol must have 1 to %d characters, received \"%s\"",
                          SIGBRIDGE_MAX_SYMBOL_LENGTH,settings.hello.symbol));
   if(settings.hello.timeframe!=SigBridgeTimeframeName(settings.period) || settings.hello.timeframe=="")
      return(StringFormat("timeframe name \"%s\" does not match period %d; use SigBridgeTimeframeName()",
                          settings.hello.timeframe,(int)settings.period));
   if(settings.hello.point<=0.0)
      return(StringFormat("point must be positive, received %g",settings.hello.point));
   if(settings.historyBars<1)
      return(StringFormat("history bars must be at least 1, received %d",settings.historyBars));
   if(settings.replyTimeoutMs==0 || settings.backfillTimeoutMs==0)
      return(StringFormat("reply timeouts must be positive, received %u ms and %u ms",
                          settings.replyTimeoutMs,settings.backfillTimeoutMs));
   if(settings.reconnectMinMs==0 || settings.reconnectMinMs>settings.reconnectMaxMs)
      return(StringFormat("reconnect delays must satisfy 0 < minimum <= maximum, received %u ms and %u ms",
                          settings.reconnectMinMs,settings.reconnectMaxMs));
   return("");
  }

//+------------------------------------------------------------------+
//| The daemon's reading of one closed bar.                          |
//+------------------------------------------------------------------+
struct SigBridgeSignal
  {
   datetime          barTime;      // open time of the bar, broker server time
   long              direction;    // +1 buy, -1 sell, 0 flat, by the daemon's threshold
   double            score;        // model output in (-1, 1); its sign is the expected direction
   double            distance;     // expected distance to the next ZigZag pivot, in price units
   long              modelVersion;
   long              latencyUs;    // daemon time from receiving the bar to replying
  };
//+------------------------------------------------------------------+
