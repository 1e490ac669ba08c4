//+------------------------------------------------------------------+
//| Text.mqh                                                         |
//| UTF-8 conversion of MQL5 strings (UTF-16) and hex dumps of bytes.|
//+------------------------------------------------------------------+

//+------------------------------------------------------------------+
//| Encodes `text` as UTF-8 into `bytes`, without a terminating zero.|
//| Returns the number of bytes, or -1 when the conversion fails.    |
//+------------------------------------------------------------------+
int SigBridgeStringToUtf8(const string text,uchar &bytes[])
  {
   ResetLastError();
// MQL5 note: StringToCharArray() with count -1 converts the whole string and also copies its
// terminating zero, so the UTF-8 length is one less than the count it returns.
   int copied=StringToCharArray(text,bytes,0,-1,CP_UTF8);
   if(copied<1)
     {
      PrintFormat("SigBridge: cannot convert a string of %d characters to UTF-8, error %d",
                  StringLen(text),GetLastError());
      return(-1);
     }
   int length=copied;
   if(bytes[length-1]==0)
      length--;
   if(ArrayResize(bytes,length)!=length)
     {
      PrintFormat("SigBridge: cannot resize the UTF-8 buffer to %d bytes, error %d",length,GetLastError());
      return(-1);
     }
   return(length);
  }
//+------------------------------------------------------------------+
//| Decodes `length` UTF-8 bytes of `bytes` from `start`.            |
//+------------------------------------------------------------------+
string SigBridgeUtf8ToString(const uchar &bytes[],const int start,const int length)
  {
   if(length<=0)
      return("");
// MQL5 note: CharArrayToString() stops at a zero byte and replaces invalid UTF-8 sequences with
// U+FFFD, so a string with an embedded NUL arrives truncated. The daemon sends none.
   return(CharArrayToString(bytes,start,length,CP_UTF8));
  }
//+------------------------------------------------------------------+
//| Formats the first `count` bytes as lowercase hex, two digits     |
//| each.                                                            |
//+------------------------------------------------------------------+
string SigBridgeBytesToHex(const uchar &bytes[],const int count)
  {
   string hex="";
   for(int i=0; i<count; i++)
      hex+=StringFormat("%02x",bytes[i]);
   return(hex);
  }
//+------------------------------------------------------------------+
//| Value of one hex digit, or -1 for any other character.           |
//+------------------------------------------------------------------+
int SigBridgeHexDigit(const ushort character)
  {
   if(character>='0' && character<='9')
      return(character-'0');
   if(character>='a' && character<='f')
      return(character-'a'+10);
   if(character>='A' && character<='F')
      return(character-'A'+10);
   return(-1);
  }
//+------------------------------------------------------------------+
//| Parses a hex string such as "81a176" into `bytes`.               |
//| Returns false for an odd length or a character that is not hex.  |
//+------------------------------------------------------------------+
bool SigBridgeHexToBytes(const string hex,uchar &bytes[])
  {
   int length=StringLen(hex);
   if(length%2!=0)
     {
      PrintFormat("SigBridge: a hex string needs an even number of digits, received %d",length);
      return(false);
     }
   if(ArrayResize(bytes,length/2)!=length/2)
     {
      PrintFormat("SigBridge: cannot resize a byte array to %d bytes, error %d",length/2,GetLastError());
      return(false);
     }
   for(int i=0; i<length; i+=2)
     {
      int high=SigBridgeHexDigit(StringGetCharacter(hex,i));
      int low=SigBridgeHexDigit(StringGetCharacter(hex,i+1));
      if(high<0 || low<0)
        {
         PrintFormat("SigBridge: invalid hex digit near position %d of \"%s\"",i,hex);
         return(false);
        }
      bytes[i/2]=(uchar)(high*16+low);
     }
   return(true);
  }
//+------------------------------------------------------------------+
