//+------------------------------------------------------------------+
//| MsgpackMap.mqh                                                   |
//| Flat view of one msgpack map with str keys and scalar values, as |
//| the daemon's replies are. Nested values are skipped and keep     |
//| only their type, so a reply with new fields still decodes.       |
//+------------------------------------------------------------------+
#include "MsgpackReader.mqh"

//+------------------------------------------------------------------+
//| Decoded map: parallel arrays indexed by entry, in wire order.    |
//+------------------------------------------------------------------+
class MsgpackMap
  {
private:
   string            m_keys[];
   ENUM_MSGPACK_TYPE m_types[];
   bool              m_booleans[];
   long              m_integers[];
   double            m_doubles[];
   string            m_strings[];
   int               m_count;
   string            m_error;

   bool              resize(const int entries);
   bool              readEntry(MsgpackReader &reader,const int index);

public:
                     MsgpackMap(void) : m_count(0) {}

   bool              parse(const uchar &payload[],const int size);
   int               count(void) const { return(m_count); }
   string            error(void) const { return(m_error); }
   string            key(const int index) const { return(m_keys[index]); }

   int               find(const string name) const;
   ENUM_MSGPACK_TYPE typeOf(const string name) const;
   bool              getBool(const string name,bool &value) const;
   bool              getInteger(const string name,long &value) const;
   bool              getDouble(const string name,double &value) const;
   bool              getString(const string name,string &value) const;
  };
//+------------------------------------------------------------------+
bool MsgpackMap::resize(const int entries)
  {
   if(ArrayResize(m_keys,entries)!=entries || ArrayResize(m_types,entries)!=entries ||
      ArrayResize(m_booleans,entries)!=entries || ArrayResize(m_integers,entries)!=entries ||
      ArrayResize(m_doubles,entries)!=entries || ArrayResize(m_strings,entries)!=entries)
     {
      m_error=StringFormat("cannot allocate %d map entries, error %d",entries,GetLastError());
      return(false);
     }
   return(true);
  }
//+------------------------------------------------------------------+
//| Reads the key and the value of entry `index`.                    |
//+------------------------------------------------------------------+
bool MsgpackMap::readEntry(MsgpackReader &reader,const int index)
  {
   string name="";
   if(!reader.readString(name))
     {
      m_error="map key: "+reader.error();
      return(false);
     }
   if(find(name)>=0)
     {
      m_error=StringFormat("duplicate key \"%s\"",name);
      return(false);
     }
   ENUM_MSGPACK_TYPE type=reader.peekType();
   bool boolean=false;
   long integer=0;
   double real=0.0;
   string text="";
   bool read=false;
   switch(type)
     {
      case MSGPACK_TYPE_NIL:
         read=reader.readNil();
         break;
      case MSGPACK_TYPE_BOOL:
         read=reader.readBool(boolean);
         break;
      case MSGPACK_TYPE_INT:
         read=reader.readInt(integer);
         break;
      case MSGPACK_TYPE_FLOAT:
         read=reader.readDouble(real);
         break;
      case MSGPACK_TYPE_STRING:
         read=reader.readString(text);
         break;
      default:
         read=reader.skip();
         break;
     }
   if(!read)
     {
      m_error=StringFormat("value of \"%s\": %s",name,reader.error());
      return(false);
     }
   m_keys[index]=name;
   m_types[index]=type;
   m_booleans[index]=boolean;
   m_integers[index]=integer;
   m_doubles[index]=real;
   m_strings[index]=text;
   // Counted only once complete, so find() never sees a half-read entry.
   m_count=index+1;
   return(true);
  }
//+------------------------------------------------------------------+
//| Decodes `payload`, which must hold exactly one map with str keys.|
//+------------------------------------------------------------------+
bool MsgpackMap::parse(const uchar &payload[],const int size)
  {
   m_count=0;
   m_error="";
   MsgpackReader reader;
   if(!reader.open(payload,size))
     {
      m_error=reader.error();
      return(false);
     }
   int entries=0;
   if(!reader.readMapHeader(entries))
     {
      m_error=reader.error();
      return(false);
     }
   // Each entry takes at least two bytes, so a larger count cannot be real.
   if(entries>size/2)
     {
      m_error=StringFormat("map announces %d entries in %d bytes",entries,size);
      return(false);
     }
   if(!resize(entries))
      return(false);
   for(int i=0; i<entries; i++)
      if(!readEntry(reader,i))
         return(false);
   if(!reader.atEnd())
     {
      m_error=StringFormat("%d bytes follow the map; expected one map per frame",size-reader.position());
      m_count=0;
      return(false);
     }
   return(true);
  }
//+------------------------------------------------------------------+
//| Index of the entry named `name`, or -1.                          |
//+------------------------------------------------------------------+
int MsgpackMap::find(const string name) const
  {
   for(int i=0; i<m_count; i++)
      if(m_keys[i]==name)
         return(i);
   return(-1);
  }
//+------------------------------------------------------------------+
//| Type of the entry `name`; MSGPACK_TYPE_INVALID when absent.      |
//+------------------------------------------------------------------+
ENUM_MSGPACK_TYPE MsgpackMap::typeOf(const string name) const
  {
   int index=find(name);
   if(index<0)
      return(MSGPACK_TYPE_INVALID);
   return(m_types[index]);
  }
//+------------------------------------------------------------------+
bool MsgpackMap::getBool(const string name,bool &value) const
  {
   int index=find(name);
   if(index<0 || m_types[index]!=MSGPACK_TYPE_BOOL)
      return(false);
   value=m_booleans[index];
   return(true);
  }
//+------------------------------------------------------------------+
bool MsgpackMap::getInteger(const string name,long &value) const
  {
   int index=find(name);
   if(index<0 || m_types[index]!=MSGPACK_TYPE_INT)
      return(false);
   value=m_integers[index];
   return(true);
  }
//+------------------------------------------------------------------+
bool MsgpackMap::getDouble(const string name,double &value) const
  {
   int index=find(name);
   if(index<0 || m_types[index]!=MSGPACK_TYPE_FLOAT)
      return(false);
   value=m_doubles[index];
   return(true);
  }
//+------------------------------------------------------------------+
bool MsgpackMap::getString(const string name,string &value) const
  {
   int index=find(name);
   if(index<0 || m_types[index]!=MSGPACK_TYPE_STRING)
      return(false);
   value=m_strings[index];
   return(true);
  }
//+------------------------------------------------------------------+
