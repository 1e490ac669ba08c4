//+------------------------------------------------------------------+
//| Replies.mqh                                                      |
//| Decodes and validates the daemon's replies: welcome, signal,     |
//| status, error and pong. A field that is missing or has another   |
//| msgpack type than the daemon sends makes the whole reply invalid;|
//| fields this client does not know are ignored.                    |
//+------------------------------------------------------------------+
#include "MsgpackMap.mqh"
#include "Protocol.mqh"

//+------------------------------------------------------------------+
//| One decoded reply. Only the fields of `type` are set; a `has...` |
//| flag is false where the daemon sent nil.                         |
//+------------------------------------------------------------------+
struct SigBridgeReply
  {
   string            type;             // "welcome", "signal", "status", "error" or "pong"
   long              id;               // the request id it answers
   bool              hasId;            // false for an error about a request the daemon could not read
   //--- welcome, signal and status
   string            symbol;
   string            timeframe;
   long              modelVersion;
   bool              hasModelVersion;
   //--- welcome and status
   string            state;            // warming_up, queued, training, waiting_for_history, ready, no_model
   string            message;          // human-readable; for an error, what was wrong and how to fix it
   long              barsHeld;
   long              barsNeeded;
   datetime          lastBarTime;      // server time of the last bar the daemon holds for the stream
   bool              hasLastBarTime;
   //--- welcome
   string            server;
   long              maxBarsPerMessage;
   //--- signal and status
   long              accepted;         // bars of the request that were new
   long              duplicates;       // bars of the request the daemon already held
   //--- signal
   datetime          barTime;
   long              direction;        // +1 buy, -1 sell, 0 flat, by the daemon's threshold
   double            score;            // model output in (-1, 1)
   double            distance;         // expected distance to the next pivot, in price units
   long              latencyUs;        // daemon time from receiving the request to the reply
   //--- error
   long              errorCode;        // ENUM_SIGBRIDGE_ERROR value
   string            errorName;
   string            errorField;
   bool              hasErrorField;
   long              errorRow;         // index of the offending bar in the request's columns
   bool              hasErrorRow;
   //--- pong
   double            serverTime;       // daemon clock, seconds since 1970 (UTC)
  };

//+------------------------------------------------------------------+
//| Clears every field of `reply`.                                   |
//+------------------------------------------------------------------+
void SigBridgeResetReply(SigBridgeReply &reply)
  {
   reply.type="";
   reply.id=0;
   reply.hasId=false;
   reply.symbol="";
   reply.timeframe="";
   reply.modelVersion=0;
   reply.hasModelVersion=false;
   reply.state="";
   reply.message="";
   reply.barsHeld=0;
   reply.barsNeeded=0;
   reply.lastBarTime=0;
   reply.hasLastBarTime=false;
   reply.server="";
   reply.maxBarsPerMessage=0;
   reply.accepted=0;
   reply.duplicates=0;
   reply.barTime=0;
   reply.direction=0;
   reply.score=0.0;
   reply.distance=0.0;
   reply.latencyUs=0;
   reply.errorCode=0;
   reply.errorName="";
   reply.errorField="";
   reply.hasErrorField=false;
   reply.errorRow=0;
   reply.hasErrorRow=false;
   reply.serverTime=0.0;
  }
//+------------------------------------------------------------------+
//| Field readers: each returns false and sets `error` when the field|
//| is missing or has the wrong msgpack type.                        |
//+------------------------------------------------------------------+
bool SigBridgeFieldError(const MsgpackMap &map,const string name,const string expected,string &error)
  {
   ENUM_MSGPACK_TYPE type=map.typeOf(name);
   if(type==MSGPACK_TYPE_INVALID)
      error=StringFormat("missing field \"%s\"",name);
   else
      error=StringFormat("field \"%s\" must be %s, received %s",name,expected,MsgpackTypeName(type));
   return(false);
  }
//+------------------------------------------------------------------+
bool SigBridgeReadString(const MsgpackMap &map,const string name,string &value,string &error)
  {
   if(map.getString(name,value))
      return(true);
   return(SigBridgeFieldError(map,name,"str",error));
  }
//+------------------------------------------------------------------+
bool SigBridgeReadInteger(const MsgpackMap &map,const string name,long &value,string &error)
  {
   if(map.getInteger(name,value))
      return(true);
   return(SigBridgeFieldError(map,name,"int",error));
  }
//+------------------------------------------------------------------+
bool SigBridgeReadDouble(const MsgpackMap &map,const string name,double &value,string &error)
  {
   if(map.getDouble(name,value))
      return(true);
   return(SigBridgeFieldError(map,name,"float",error));
  }
//+------------------------------------------------------------------+
//| Reads an int that may be nil; `present` is false for nil.        |
//+------------------------------------------------------------------+
bool SigBridgeReadOptionalInteger(const MsgpackMap &map,const string name,long &value,bool &present,string &error)
  {
   present=false;
   value=0;
   if(map.typeOf(name)==MSGPACK_TYPE_NIL)
      return(true);
   if(!map.getInteger(name,value))
      return(SigBridgeFieldError(map,name,"int or nil",error));
   present=true;
   return(true);
  }
//+------------------------------------------------------------------+
bool SigBridgeReadOptionalString(const MsgpackMap &map,const string name,string &value,bool &present,string &error)
  {
   present=false;
   value="";
   if(map.typeOf(name)==MSGPACK_TYPE_NIL)
      return(true);
   if(!map.getString(name,value))
      return(SigBridgeFieldError(map,name,"str or nil",error));
   present=true;
   return(true);
  }
//+------------------------------------------------------------------+
//| Fields that welcome, signal and status share.                    |
//+------------------------------------------------------------------+
bool SigBridgeReadStreamFields(const MsgpackMap &map,SigBridgeReply &reply,string &error)
  {
   return(SigBridgeReadString(map,"symbol",reply.symbol,error) &&
          SigBridgeReadString(map,"timeframe",reply.timeframe,error) &&
          SigBridgeReadOptionalInteger(map,"model_version",reply.modelVersion,reply.hasModelVersion,error));
  }
//+------------------------------------------------------------------+
//| Fields that welcome and status share.                            |
//+------------------------------------------------------------------+
bool SigBridgeReadStateFields(const MsgpackMap &map,SigBridgeReply &reply,string &error)
  {
   long lastBarTime=0;
   if(!SigBridgeReadString(map,"state",reply.state,error) ||
      !SigBridgeReadString(map,"message",reply.message,error) ||
      !SigBridgeReadInteger(map,"bars_held",reply.barsHeld,error) ||
      !SigBridgeReadInteger(map,"bars_needed",reply.barsNeeded,error) ||
      !SigBridgeReadOptionalInteger(map,"last_bar_time",lastBarTime,reply.hasLastBarTime,error))
      return(false);
   reply.lastBarTime=(datetime)lastBarTime;
   return(true);
  }
//+------------------------------------------------------------------+
//| Fields of a welcome reply besides the shared ones.               |
//+------------------------------------------------------------------+
bool SigBridgeReadWelcome(const MsgpackMap &map,SigBridgeReply &reply,string &error)
  {
   if(!SigBridgeReadString(map,"server",reply.server,error) ||
      !SigBridgeReadInteger(map,"max_bars_per_message",reply.maxBarsPerMessage,error))
      return(false);
   if(reply.maxBarsPerMessage<1)
     {
      error=StringFormat("max_bars_per_message must be positive, received %I64d",reply.maxBarsPerMessage);
      return(false);
     }
   return(true);
  }
//+------------------------------------------------------------------+
//| Fields of a signal reply besides the shared ones.                |
//+------------------------------------------------------------------+
bool SigBridgeReadSignal(const MsgpackMap &map,SigBridgeReply &reply,string &error)
  {
   long barTime=0;
   if(!SigBridgeReadInteger(map,"bar_time",barTime,error) ||
      !SigBridgeReadInteger(map,"direction",reply.direction,error) ||
      !SigBridgeReadDouble(map,"score",reply.score,error) ||
      !SigBridgeReadDouble(map,"distance",reply.distance,error) ||
      !SigBridgeReadInteger(map,"latency_us",reply.latencyUs,error))
      return(false);
   reply.barTime=(datetime)barTime;
   if(reply.direction<-1 || reply.direction>1)
     {
      error=StringFormat("direction must be -1, 0 or 1, received %I64d",reply.direction);
      return(false);
     }
   if(!reply.hasModelVersion)
     {
      error="a signal needs a model_version, received nil";
      return(false);
     }
   return(true);
  }
//+------------------------------------------------------------------+
//| Reads `row` of an error reply; older daemons leave it out.       |
//+------------------------------------------------------------------+
bool SigBridgeReadErrorRow(const MsgpackMap &map,SigBridgeReply &reply,string &error)
  {
   if(map.typeOf("row")==MSGPACK_TYPE_INVALID)
     {
      reply.errorRow=0;
      reply.hasErrorRow=false;
      return(true);
     }
   return(SigBridgeReadOptionalInteger(map,"row",reply.errorRow,reply.hasErrorRow,error));
  }
//+------------------------------------------------------------------+
//| Fields of an error reply.                                        |
//+------------------------------------------------------------------+
bool SigBridgeReadError(const MsgpackMap &map,SigBridgeReply &reply,string &error)
  {
   return(SigBridgeReadInteger(map,"code",reply.errorCode,error) &&
          SigBridgeReadString(map,"name",reply.errorName,error) &&
          SigBridgeReadString(map,"message",reply.message,error) &&
          SigBridgeReadOptionalString(map,"field",reply.errorField,reply.hasErrorField,error) &&
          SigBridgeReadErrorRow(map,reply,error));
  }
//+------------------------------------------------------------------+
//| Decodes the first `size` bytes of `payload` into `reply`.        |
//| Returns false with the reason in `error` for an invalid reply.   |
//+------------------------------------------------------------------+
bool SigBridgeParseReply(const uchar &payload[],const int size,SigBridgeReply &reply,string &error)
  {
   SigBridgeResetReply(reply);
   error="";
   MsgpackMap map;
   if(!map.parse(payload,size))
     {
      error="not a msgpack map: "+map.error();
      return(false);
     }

   long version=0;
   if(!SigBridgeReadInteger(map,"v",version,error))
      return(false);
   if(version!=SIGBRIDGE_PROTOCOL_VERSION)
     {
      error=StringFormat("protocol version v=%I64d, this client speaks v=%d",version,SIGBRIDGE_PROTOCOL_VERSION);
      return(false);
     }
   if(!SigBridgeReadString(map,"type",reply.type,error) ||
      !SigBridgeReadOptionalInteger(map,"id",reply.id,reply.hasId,error))
      return(false);
   if(!reply.hasId && reply.type!="error")
     {
      error=StringFormat("a %s reply needs an id, received nil",reply.type);
      return(false);
     }

   if(reply.type=="welcome")
      return(SigBridgeReadStreamFields(map,reply,error) && SigBridgeReadStateFields(map,reply,error) &&
             SigBridgeReadWelcome(map,reply,error));
   if(reply.type=="status")
      return(SigBridgeReadStreamFields(map,reply,error) && SigBridgeReadStateFields(map,reply,error) &&
             SigBridgeReadInteger(map,"accepted",reply.accepted,error) &&
             SigBridgeReadInteger(map,"duplicates",reply.duplicates,error));
   if(reply.type=="signal")
      return(SigBridgeReadStreamFields(map,reply,error) && SigBridgeReadSignal(map,reply,error) &&
             SigBridgeReadInteger(map,"accepted",reply.accepted,error) &&
             SigBridgeReadInteger(map,"duplicates",reply.duplicates,error));
   if(reply.type=="error")
      return(SigBridgeReadError(map,reply,error));
   if(reply.type=="pong")
      return(SigBridgeReadDouble(map,"time",reply.serverTime,error));
   error=StringFormat("unknown reply type \"%s\"",reply.type);
   return(false);
  }
//+------------------------------------------------------------------+
