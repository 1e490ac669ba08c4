//+------------------------------------------------------------------+
//| MsgpackWriter.mqh                                                |
//| msgpack encoder producing the bytes msgpack-python produces:     |
//| the smallest integer format, float64 for every double, str8 for  |
//| strings of 32 to 255 bytes.                                      |
//+------------------------------------------------------------------+
#include "Text.mqh"

//--- Reinterprets a double as its IEEE 754 bits.
union SigBridgeDoubleBits
  {
   double            value;
   ulong             bits;
  };

//+------------------------------------------------------------------+
//| Appends msgpack values to a growing byte buffer.                 |
//| After a failed write `failed()` is true and further writes are   |
//| ignored, so a caller checks once after the whole message.        |
//+------------------------------------------------------------------+
class MsgpackWriter
  {
private:
   uchar             m_buffer[];
   int               m_size;
   bool              m_failed;

   bool              reserve(const int extra);
   void              putByte(const uint value);
   void              putBigEndian(const ulong value,const int bytes);

public:
                     MsgpackWriter(void) : m_size(0),m_failed(false) {}

   void              reset(void) { m_size=0; m_failed=false; }
   int               size(void) const { return(m_size); }
   bool              failed(void) const { return(m_failed); }

   void              writeNil(void);
   void              writeBool(const bool value);
   void              writeInt(const long value);
   void              writeDouble(const double value);
   void              writeString(const string value);
   void              writeArrayHeader(const int count);
   void              writeMapHeader(const int count);

   bool              copyTo(uchar &bytes[]) const;
   string            toHex(void) const;
  };
//+------------------------------------------------------------------+
//| Makes room for `extra` more bytes, doubling the capacity.        |
//+------------------------------------------------------------------+
bool MsgpackWriter::reserve(const int extra)
  {
   if(m_failed)
      return(false);
   int needed=m_size+extra;
   int capacity=ArraySize(m_buffer);
   if(needed<=capacity)
      return(true);
   capacity=(2*capacity>needed) ? 2*capacity : needed;
   if(ArrayResize(m_buffer,capacity)!=capacity)
     {
      PrintFormat("SigBridge: cannot grow the msgpack buffer to %d bytes, error %d",capacity,GetLastError());
      m_failed=true;
      return(false);
     }
   return(true);
  }
//+------------------------------------------------------------------+
//| Appends the low byte of `value`; the caller reserved the room.   |
//+------------------------------------------------------------------+
void MsgpackWriter::putByte(const uint value)
  {
   m_buffer[m_size]=(uchar)(value&0xFF);
   m_size++;
  }
//+------------------------------------------------------------------+
//| Appends the low `bytes` bytes of `value`, most significant first.|
//+------------------------------------------------------------------+
void MsgpackWriter::putBigEndian(const ulong value,const int bytes)
  {
   for(int shift=8*(bytes-1); shift>=0; shift-=8)
      putByte((uint)((value>>shift)&0xFF));
  }
//+------------------------------------------------------------------+
void MsgpackWriter::writeNil(void)
  {
   if(reserve(1))
      putByte(0xc0);
  }
//+------------------------------------------------------------------+
void MsgpackWriter::writeBool(const bool value)
  {
   if(reserve(1))
      putByte(value ? 0xc3 : 0xc2);
  }
//+------------------------------------------------------------------+
//| Writes an integer in the smallest msgpack format that holds it:  |
//| unsigned formats for values >= 0, signed formats below zero.     |
//+------------------------------------------------------------------+
void MsgpackWriter::writeInt(const long value)
  {
   if(!reserve(9))
      return;
   if(value>=0)
     {
      if(value<128)
         putByte((uint)value);
      else if(value<=0xFF)
        {
         putByte(0xcc);
         putBigEndian((ulong)value,1);
        }
      else if(value<=0xFFFF)
        {
         putByte(0xcd);
         putBigEndian((ulong)value,2);
        }
      else if(value<=0xFFFFFFFF)
        {
         putByte(0xce);
         putBigEndian((ulong)value,4);
        }
      else
        {
         putByte(0xcf);
         putBigEndian((ulong)value,8);
        }
      return;
     }
// Negative values are two's complement, so the low bytes of the 64-bit pattern are the encoding.
   if(value>=-32)
      putByte((uint)(value&0xFF));
   else if(value>=-128)
     {
      putByte(0xd0);
      putBigEndian((ulong)value,1);
     }
   else if(value>=-32768)
     {
      putByte(0xd1);
      putBigEndian((ulong)value,2);
     }
   else if(value>=-2147483648)
     {
      putByte(0xd2);
      putBigEndian((ulong)value,4);
     }
   else
     {
      putByte(0xd3);
      putBigEndian((ulong)value,8);
     }
  }
//+------------------------------------------------------------------+
//| Writes a float64; msgpack-python packs every Python float so.    |
//+------------------------------------------------------------------+
void MsgpackWriter::writeDouble(const double value)
  {
   if(!reserve(9))
      return;
   SigBridgeDoubleBits converter;
   converter.value=value;
   putByte(0xcb);
   putBigEndian(converter.bits,8);
  }
//+------------------------------------------------------------------+
//| Writes `value` as a UTF-8 msgpack str.                           |
//+------------------------------------------------------------------+
void MsgpackWriter::writeString(const string value)
  {
   if(m_failed)
      return;
   uchar utf8[];
   int length=SigBridgeStringToUtf8(value,utf8);
   if(length<0)
     {
      m_failed=true;
      return;
     }
   if(!reserve(5+length))
      return;
   if(length<32)
      putByte(0xa0|(uint)length);
   else if(length<=0xFF)
     {
      putByte(0xd9);
      putBigEndian((ulong)length,1);
     }
   else if(length<=0xFFFF)
     {
      putByte(0xda);
      putBigEndian((ulong)length,2);
     }
   else
     {
      putByte(0xdb);
      putBigEndian((ulong)length,4);
     }
   for(int i=0; i<length; i++)
      putByte(utf8[i]);
  }
//+------------------------------------------------------------------+
void MsgpackWriter::writeArrayHeader(const int count)
  {
   if(!reserve(5))
      return;
   if(count<16)
      putByte(0x90|(uint)count);
   else if(count<=0xFFFF)
     {
      putByte(0xdc);
      putBigEndian((ulong)count,2);
     }
   else
     {
      putByte(0xdd);
      putBigEndian((ulong)count,4);
     }
  }
//+------------------------------------------------------------------+
void MsgpackWriter::writeMapHeader(const int count)
  {
   if(!reserve(5))
      return;
   if(count<16)
      putByte(0x80|(uint)count);
   else if(count<=0xFFFF)
     {
      putByte(0xde);
      putBigEndian((ulong)count,2);
     }
   else
     {
      putByte(0xdf);
      putBigEndian((ulong)count,4);
     }
  }
//+------------------------------------------------------------------+
//| Copies the encoded bytes into `bytes`, sized to fit exactly.     |
//+------------------------------------------------------------------+
bool MsgpackWriter::copyTo(uchar &bytes[]) const
  {
   if(m_failed)
      return(false);
   if(ArrayResize(bytes,m_size)!=m_size)
     {
      PrintFormat("SigBridge: cannot resize the output array to %d bytes, error %d",m_size,GetLastError());
      return(false);
     }
   if(m_size>0 && ArrayCopy(bytes,m_buffer,0,0,m_size)!=m_size)
     {
      PrintFormat("SigBridge: cannot copy %d encoded bytes, error %d",m_size,GetLastError());
      return(false);
     }
   return(true);
  }
//+------------------------------------------------------------------+
string MsgpackWriter::toHex(void) const
  {
   return(SigBridgeBytesToHex(m_buffer,m_size));
  }
//+------------------------------------------------------------------+
