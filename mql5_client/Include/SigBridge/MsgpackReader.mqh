//+------------------------------------------------------------------+
//| MsgpackReader.mqh                                                |
//| msgpack decoder: a bounds-checked reader of single values and a  |
//| flat view of one map of scalars, which is what a reply is.       |
//+------------------------------------------------------------------+
#include "Text.mqh"
#include "MsgpackWriter.mqh"

enum ENUM_MSGPACK_TYPE
  {
   MSGPACK_TYPE_INVALID=0,
   MSGPACK_TYPE_NIL=1,
   MSGPACK_TYPE_BOOL=2,
   MSGPACK_TYPE_INT=3,
   MSGPACK_TYPE_FLOAT=4,
   MSGPACK_TYPE_STRING=5,
   MSGPACK_TYPE_BINARY=6,
   MSGPACK_TYPE_ARRAY=7,
   MSGPACK_TYPE_MAP=8,
   MSGPACK_TYPE_EXTENSION=9
  };

//+------------------------------------------------------------------+
//| Name of a msgpack type for error messages.                       |
//+------------------------------------------------------------------+
string MsgpackTypeName(const ENUM_MSGPACK_TYPE type)
  {
   switch(type)
     {
      case MSGPACK_TYPE_NIL:
         return("nil");
      case MSGPACK_TYPE_BOOL:
         return("bool");
      case MSGPACK_TYPE_INT:
         return("int");
      case MSGPACK_TYPE_FLOAT:
         return("float");
      case MSGPACK_TYPE_STRING:
         return("str");
      case MSGPACK_TYPE_BINARY:
         return("bin");
      case MSGPACK_TYPE_ARRAY:
         return("array");
      case MSGPACK_TYPE_MAP:
         return("map");
      case MSGPACK_TYPE_EXTENSION:
         return("ext");
      default:
         break;
     }
   return("invalid");
  }

//+------------------------------------------------------------------+
//| Reads msgpack values one at a time from a copy of the payload.   |
//| Every read checks the remaining length; on failure it returns    |
//| false and `error()` says what was expected at which offset.      |
//+------------------------------------------------------------------+
class MsgpackReader
  {
private:
   uchar             m_data[];
   int               m_size;
   int               m_position;
   string            m_error;

   bool              fail(const string message);
   bool              need(const int bytes,const string what);
   ulong             takeBigEndian(const int bytes);
   bool              readLength(const int bytes,const string what,int &length);

public:
                     MsgpackReader(void) : m_size(0),m_position(0) {}

   bool              open(const uchar &data[],const int size);
   int               position(void) const { return(m_position); }
   bool              atEnd(void) const { return(m_position>=m_size); }
   string            error(void) const { return(m_error); }

   ENUM_MSGPACK_TYPE peekType(void) const;
   bool              readNil(void);
   bool              readBool(bool &value);
   bool              readInt(long &value);
   bool              readDouble(double &value);
   bool              readString(string &value);
   bool              readArrayHeader(int &count);
   bool              readMapHeader(int &count);
   bool              skip(void);
  };
//+------------------------------------------------------------------+
bool MsgpackReader::fail(const string message)
  {
   m_error=StringFormat("%s at byte %d",message,m_position);
   return(false);
  }
//+------------------------------------------------------------------+
bool MsgpackReader::need(const int bytes,const string what)
  {
   if(bytes<0 || m_size-m_position<bytes)
      return(fail(StringFormat("truncated %s: %d bytes needed, %d left",what,bytes,m_size-m_position)));
   return(true);
  }
//+------------------------------------------------------------------+
//| Consumes `bytes` bytes as a big-endian unsigned number.          |
//+------------------------------------------------------------------+
ulong MsgpackReader::takeBigEndian(const int bytes)
  {
   ulong value=0;
   for(int i=0; i<bytes; i++)
     {
      value=(value<<8)|(ulong)m_data[m_position];
      m_position++;
     }
   return(value);
  }
//+------------------------------------------------------------------+
//| Reads a length field of `bytes` bytes after a type byte.         |
//+------------------------------------------------------------------+
bool MsgpackReader::readLength(const int bytes,const string what,int &length)
  {
   if(!need(bytes,what+" length"))
      return(false);
   ulong value=takeBigEndian(bytes);
   if(value>0x7FFFFFFF)
      return(fail(StringFormat("%s length %I64u exceeds the int range",what,value)));
   length=(int)value;
   return(true);
  }
//+------------------------------------------------------------------+
//| Starts reading the first `size` bytes of `data`.                 |
//+------------------------------------------------------------------+
bool MsgpackReader::open(const uchar &data[],const int size)
  {
   m_position=0;
   m_size=0;
   m_error="";
   if(size<0 || size>ArraySize(data))
      return(fail(StringFormat("invalid payload size %d for an array of %d bytes",size,ArraySize(data))));
   if(ArrayResize(m_data,size)!=size)
      return(fail(StringFormat("cannot allocate %d bytes, error %d",size,GetLastError())));
   if(size>0 && ArrayCopy(m_data,data,0,0,size)!=size)
      return(fail(StringFormat("cannot copy %d bytes, error %d",size,GetLastError())));
   m_size=size;
   return(true);
  }
//+------------------------------------------------------------------+
//| Type of the next value, or MSGPACK_TYPE_INVALID at the end or    |
//| for the one byte msgpack leaves unused (0xc1).                   |
//+------------------------------------------------------------------+
ENUM_MSGPACK_TYPE MsgpackReader::peekType(void) const
  {
   if(m_position>=m_size)
      return(MSGPACK_TYPE_INVALID);
   uint marker=m_data[m_position];
   if(marker<=0x7f || marker>=0xe0)
      return(MSGPACK_TYPE_INT);
   if(marker<=0x8f)
      return(MSGPACK_TYPE_MAP);
   if(marker<=0x9f)
      return(MSGPACK_TYPE_ARRAY);
   if(marker<=0xbf)
      return(MSGPACK_TYPE_STRING);
   switch(marker)
     {
      case 0xc0:
         return(MSGPACK_TYPE_NIL);
      case 0xc2:
      case 0xc3:
         return(MSGPACK_TYPE_BOOL);
      case 0xc4:
      case 0xc5:
      case 0xc6:
         return(MSGPACK_TYPE_BINARY);
      case 0xc7:
      case 0xc8:
      case 0xc9:
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
         return(MSGPACK_TYPE_EXTENSION);
      case 0xca:
      case 0xcb:
         return(MSGPACK_TYPE_FLOAT);
      case 0xcc:
      case 0xcd:
      case 0xce:
      case 0xcf:
      case 0xd0:
      case 0xd1:
      case 0xd2:
      case 0xd3:
         return(MSGPACK_TYPE_INT);
      case 0xd9:
      case 0xda:
      case 0xdb:
         return(MSGPACK_TYPE_STRING);
      case 0xdc:
      case 0xdd:
         return(MSGPACK_TYPE_ARRAY);
      case 0xde:
      case 0xdf:
         return(MSGPACK_TYPE_MAP);
      default:
         break;
     }
   return(MSGPACK_TYPE_INVALID);
  }
//+------------------------------------------------------------------+
bool MsgpackReader::readNil(void)
  {
   if(peekType()!=MSGPACK_TYPE_NIL)
      return(fail("expected nil, found "+MsgpackTypeName(peekType())));
   m_position++;
   return(true);
  }
//+------------------------------------------------------------------+
bool MsgpackReader::readBool(bool &value)
  {
   if(peekType()!=MSGPACK_TYPE_BOOL)
      return(fail("expected bool, found "+MsgpackTypeName(peekType())));
   value=(m_data[m_position]==0xc3);
   m_position++;
   return(true);
  }
//+------------------------------------------------------------------+
//| Reads any msgpack integer format into a signed 64-bit value.     |
//+------------------------------------------------------------------+
bool MsgpackReader::readInt(long &value)
  {
   if(peekType()!=MSGPACK_TYPE_INT)
      return(fail("expected int, found "+MsgpackTypeName(peekType())));
   uint marker=m_data[m_position];
   if(marker<=0x7f)
     {
      value=(long)marker;
      m_position++;
      return(true);
     }
   if(marker>=0xe0)
     {
      value=(long)marker-256;
      m_position++;
      return(true);
     }
   int bytes=1<<((int)(marker&0x03));
   if(!need(1+bytes,"int"))
      return(false);
   m_position++;
   ulong raw=takeBigEndian(bytes);
   if(marker<=0xcf)
     {
      // uint 8/16/32/64
      if(raw>(ulong)0x7FFFFFFFFFFFFFFF)
         return(fail(StringFormat("uint64 %I64u exceeds the int64 range",raw)));
      value=(long)raw;
      return(true);
     }
// int 8/16/32/64: extend the sign bit of the `bytes`-byte value.
   if(bytes<8)
     {
      ulong sign=(ulong)1<<(8*bytes-1);
      if((raw&sign)!=0)
         raw|=~(((ulong)1<<(8*bytes))-1);
     }
   value=(long)raw;
   return(true);
  }
//+------------------------------------------------------------------+
//| Reads a float32 or float64. An int is not accepted: the daemon   |
//| packs every float field as a float64.                            |
//+------------------------------------------------------------------+
bool MsgpackReader::readDouble(double &value)
  {
   if(peekType()!=MSGPACK_TYPE_FLOAT)
      return(fail("expected float, found "+MsgpackTypeName(peekType())));
   bool single=(m_data[m_position]==0xca);
   int bytes=single ? 4 : 8;
   if(!need(1+bytes,"float"))
      return(false);
   m_position++;
   ulong raw=takeBigEndian(bytes);
   SigBridgeDoubleBits converter;
   if(!single)
     {
      converter.bits=raw;
      value=converter.value;
      return(true);
     }
// float32: rebuild the float64 bit pattern (normal numbers, zeros, infinities and NaN).
   ulong sign=(raw>>31)&1;
   ulong exponent=(raw>>23)&0xFF;
   ulong fraction=raw&0x7FFFFF;
   if(exponent==0 && fraction!=0)
      return(fail("subnormal float32 values are not supported"));
   ulong exponent64=0;
   if(exponent==0xFF)
      exponent64=0x7FF;
   else if(exponent!=0)
      exponent64=exponent-127+1023;
   converter.bits=(sign<<63)|(exponent64<<52)|(fraction<<29);
   value=converter.value;
   return(true);
  }
//+------------------------------------------------------------------+
bool MsgpackReader::readString(string &value)
  {
   if(peekType()!=MSGPACK_TYPE_STRING)
      return(fail("expected str, found "+MsgpackTypeName(peekType())));
   uint marker=m_data[m_position];
   m_position++;
   int length=0;
   if(marker<=0xbf)
      length=(int)(marker&0x1f);
   else if(!readLength(1<<((int)marker-0xd9),"str",length))
      return(false);
   if(!need(length,"str"))
      return(false);
   value=SigBridgeUtf8ToString(m_data,m_position,length);
   m_position+=length;
   return(true);
  }
//+------------------------------------------------------------------+
bool MsgpackReader::readArrayHeader(int &count)
  {
   if(peekType()!=MSGPACK_TYPE_ARRAY)
      return(fail("expected array, found "+MsgpackTypeName(peekType())));
   uint marker=m_data[m_position];
   m_position++;
   if(marker<=0x9f)
     {
      count=(int)(marker&0x0f);
      return(true);
     }
   return(readLength(marker==0xdc ? 2 : 4,"array",count));
  }
//+------------------------------------------------------------------+
bool MsgpackReader::readMapHeader(int &count)
  {
   if(peekType()!=MSGPACK_TYPE_MAP)
      return(fail("expected map, found "+MsgpackTypeName(peekType())));
   uint marker=m_data[m_position];
   m_position++;
   if(marker<=0x8f)
     {
      count=(int)(marker&0x0f);
      return(true);
     }
   return(readLength(marker==0xde ? 2 : 4,"map",count));
  }
//+------------------------------------------------------------------+
//| Skips the next value, nested arrays and maps included, without   |
//| recursion: `pending` counts the values still to skip.            |
//+------------------------------------------------------------------+
bool MsgpackReader::skip(void)
  {
   long pending=1;
   while(pending>0)
     {
      pending--;
      ENUM_MSGPACK_TYPE type=peekType();
      uint marker=(m_position<m_size) ? m_data[m_position] : 0;
      int count=0;
      switch(type)
        {
         case MSGPACK_TYPE_ARRAY:
            if(!readArrayHeader(count))
               return(false);
            pending+=count;
            break;
         case MSGPACK_TYPE_MAP:
            if(!readMapHeader(count))
               return(false);
            pending+=2*(long)count;
            break;
         case MSGPACK_TYPE_NIL:
         case MSGPACK_TYPE_BOOL:
         case MSGPACK_TYPE_INT:
         case MSGPACK_TYPE_FLOAT:
           {
            int size=1;
            if(marker==0xca)
               size=5;
            else if(marker==0xcb)
               size=9;
            else if(marker>=0xcc && marker<=0xd3)
               size=1+(1<<((int)(marker&0x03)));
            if(!need(size,MsgpackTypeName(type)))
               return(false);
            m_position+=size;
            break;
           }
         case MSGPACK_TYPE_STRING:
         case MSGPACK_TYPE_BINARY:
           {
            m_position++;
            int length=0;
            if(marker<=0xbf)
               length=(int)(marker&0x1f);
            else if(!readLength(marker>=0xd9 ? 1<<((int)marker-0xd9) : 1<<((int)marker-0xc4),"str",length))
               return(false);
            if(!need(length,MsgpackTypeName(type)))
               return(false);
            m_position+=length;
            break;
           }
         case MSGPACK_TYPE_EXTENSION:
           {
            m_position++;
            int length=0;
            if(marker>=0xd4 && marker<=0xd8)
               length=1<<((int)marker-0xd4);
            else if(!readLength(1<<((int)marker-0xc7),"ext",length))
               return(false);
            if(!need(1+length,"ext"))
               return(false);
            m_position+=1+length;
            break;
           }
         default:
            return(fail(StringFormat("invalid msgpack byte 0x%02x",marker)));
        }
      // Each pending value takes at least one byte, so a count beyond the rest is truncated.
      if(pending>m_size-m_position)
         return(fail(StringFormat("truncated container: %I64d values announced, %d bytes left",pending,m_size-m_position)));
     }
   return(true);
  }
//+------------------------------------------------------------------+
