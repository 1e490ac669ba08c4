//+------------------------------------------------------------------+
//| SelfTest.mqh                                                     |
//| Checks the msgpack encoder, the request builders and the reply   |
//| parser against the golden vectors that the Python tests check    |
//| against the daemon's own encoder. Needs no daemon and no DLL.    |
//+------------------------------------------------------------------+
#include "MsgpackReader.mqh"
#include "Protocol.mqh"
#include "Replies.mqh"

//--- Counts of one self-test run.
struct SigBridgeSelfTestResult
  {
   int               checks;
   int               failures;
  };

//+------------------------------------------------------------------+
//| Counts one check and prints it when it failed.                   |
//+------------------------------------------------------------------+
void SelfTestCheck(SigBridgeSelfTestResult &result,const bool passed,const string label,const string detail)
  {
   result.checks++;
   if(passed)
      return;
   result.failures++;
   PrintFormat("SigBridge self-test FAILED: %s: %s",label,detail);
  }
//+------------------------------------------------------------------+
//| Compares two hex strings and names the first differing byte.     |
//+------------------------------------------------------------------+
void SelfTestExpectHex(SigBridgeSelfTestResult &result,const string label,const string actual,const string expected)
  {
   if(actual==expected)
     {
      SelfTestCheck(result,true,label,"");
      return;
     }
   int length=StringLen(actual)<StringLen(expected) ? StringLen(actual) : StringLen(expected);
   int offset=0;
   while(offset<length && StringGetCharacter(actual,offset)==StringGetCharacter(expected,offset))
      offset++;
   SelfTestCheck(result,false,label,
                 StringFormat("bytes differ from byte %d: encoded %d bytes, expected %d; encoded ...%s, expected ...%s",
                              offset/2,StringLen(actual)/2,StringLen(expected)/2,
                              StringSubstr(actual,offset-offset%2,32),StringSubstr(expected,offset-offset%2,32)));
  }
//+------------------------------------------------------------------+
void SelfTestExpectString(SigBridgeSelfTestResult &result,const string label,const string actual,const string expected)
  {
   SelfTestCheck(result,actual==expected,label,StringFormat("received \"%s\", expected \"%s\"",actual,expected));
  }
//+------------------------------------------------------------------+
void SelfTestExpectLong(SigBridgeSelfTestResult &result,const string label,const long actual,const long expected)
  {
   SelfTestCheck(result,actual==expected,label,StringFormat("received %I64d, expected %I64d",actual,expected));
  }
//+------------------------------------------------------------------+
//| Exact comparison: both sides are the same float64 bit pattern.   |
//+------------------------------------------------------------------+
void SelfTestExpectDouble(SigBridgeSelfTestResult &result,const string label,const double actual,const double expected)
  {
   SelfTestCheck(result,actual==expected,label,StringFormat("received %.17g, expected %.17g",actual,expected));
  }
//+------------------------------------------------------------------+
void SelfTestExpectBool(SigBridgeSelfTestResult &result,const string label,const bool actual,const bool expected)
  {
   SelfTestCheck(result,actual==expected,label,
                 StringFormat("received %s, expected %s",actual ? "true" : "false",expected ? "true" : "false"));
  }
//+------------------------------------------------------------------+
//| `count` copies of `text`, joined.                                |
//+------------------------------------------------------------------+
string SelfTestRepeat(const string text,const int count)
  {
   string repeated="";
   for(int i=0; i<count; i++)
      repeated+=text;
   return(repeated);
  }
//+------------------------------------------------------------------+
//| Decodes a hex vector with the reply parser.                      |
//+------------------------------------------------------------------+
bool SelfTestParseReply(const string hex,SigBridgeReply &reply,string &error)
  {
   uchar payload[];
   if(!SigBridgeHexToBytes(hex,payload))
     {
      error="invalid hex in the vector";
      return(false);
     }
   return(SigBridgeParseReply(payload,ArraySize(payload),reply,error));
  }
//+------------------------------------------------------------------+
bool SelfTestOpenReader(SigBridgeSelfTestResult &result,MsgpackReader &reader,const string label,const string hex)
  {
   uchar payload[];
   bool opened=SigBridgeHexToBytes(hex,payload) && reader.open(payload,ArraySize(payload));
   SelfTestCheck(result,opened,label,"cannot open the vector: "+reader.error());
   return(opened);
  }
//+------------------------------------------------------------------+
//| Reader checks: read one value of the expected type and compare.  |
//+------------------------------------------------------------------+
void SelfTestReadArrayHeader(SigBridgeSelfTestResult &result,MsgpackReader &reader,const string label,const int expected)
  {
   int count=0;
   bool read=reader.readArrayHeader(count);
   SelfTestCheck(result,read && count==expected,label+": array header",
                 read ? StringFormat("count %d, expected %d",count,expected) : reader.error());
  }
//+------------------------------------------------------------------+
void SelfTestReadNil(SigBridgeSelfTestResult &result,MsgpackReader &reader,const string label)
  {
   SelfTestCheck(result,reader.readNil(),label+": nil",reader.error());
  }
//+------------------------------------------------------------------+
void SelfTestReadBool(SigBridgeSelfTestResult &result,MsgpackReader &reader,const string label,const bool expected)
  {
   bool value=!expected;
   bool read=reader.readBool(value);
   SelfTestCheck(result,read && value==expected,label+": bool",read ? "wrong value" : reader.error());
  }
//+------------------------------------------------------------------+
void SelfTestReadInt(SigBridgeSelfTestResult &result,MsgpackReader &reader,const string label,const long expected)
  {
   long value=0;
   bool read=reader.readInt(value);
   SelfTestCheck(result,read && value==expected,label+StringFormat(": int %I64d",expected),
                 read ? StringFormat("received %I64d",value) : reader.error());
  }
//+------------------------------------------------------------------+
void SelfTestReadDouble(SigBridgeSelfTestResult &result,MsgpackReader &reader,const string label,const double expected)
  {
   double value=0.0;
   bool read=reader.readDouble(value);
   SelfTestCheck(result,read && value==expected,label+StringFormat(": float %.17g",expected),
                 read ? StringFormat("received %.17g",value) : reader.error());
  }
//+------------------------------------------------------------------+
void SelfTestReadString(SigBridgeSelfTestResult &result,MsgpackReader &reader,const string label,const string expected)
  {
   string value="";
   bool read=reader.readString(value);
   SelfTestCheck(result,read && value==expected,label+StringFormat(": str of %d characters",StringLen(expected)),
                 read ? StringFormat("received \"%s\"",value) : reader.error());
  }

#include "GoldenVectors.mqh"

//+------------------------------------------------------------------+
//| Runs all checks. Returns the number of failures; `checks` gets   |
//| the number of checks run.                                        |
//+------------------------------------------------------------------+
int SigBridgeRunSelfTest(int &checks)
  {
   SigBridgeSelfTestResult result;
   result.checks=0;
   result.failures=0;
   SigBridgeGoldenRunAll(result);

// Timeframe names must be the daemon's: ENUM_TIMEFRAMES without the PERIOD_ prefix.
   SelfTestExpectString(result,"timeframe H1",SigBridgeTimeframeName(PERIOD_H1),"H1");
   SelfTestExpectString(result,"timeframe MN1",SigBridgeTimeframeName(PERIOD_MN1),"MN1");
   SelfTestExpectString(result,"timeframe current",SigBridgeTimeframeName(PERIOD_CURRENT),"");

// Round trip through UTF-8 of every BMP code unit range boundary and a surrogate pair.
   ushort units[]={0x0041,0x007F,0x0080,0x07FF,0x0800,0xFFFD,0xD834,0xDD1E};
   string text=ShortArrayToString(units);
   uchar utf8[];
   int length=SigBridgeStringToUtf8(text,utf8);
   SelfTestExpectLong(result,"UTF-8 length",length,1+1+2+2+3+3+4);
   SelfTestExpectString(result,"UTF-8 round trip",SigBridgeUtf8ToString(utf8,0,length),text);

   checks=result.checks;
   return(result.failures);
  }
//+------------------------------------------------------------------+
