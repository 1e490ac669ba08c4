//+------------------------------------------------------------------+
//| Transport.mqh                                                    |
//| One ZeroMQ DEALER socket on the mql-zmq binding                  |
//| (github.com/dingmaotu/mql-zmq: Include/Zmq, libzmq.dll and       |
//| libsodium.dll in MQL5/Libraries). This is the only file that     |
//| touches ZeroMQ; the CI harness compiles the other include files  |
//| against its own implementation of this class.                    |
//+------------------------------------------------------------------+
#include <Zmq/Zmq.mqh>

//--- Key of the terminal-wide context that mql-zmq reference-counts in global variables.
#define SIGBRIDGE_ZMQ_CONTEXT_KEY "__sigbridge_zmq_context__"

//+------------------------------------------------------------------+
//| DEALER socket with non-blocking send and receive with timeout.   |
//+------------------------------------------------------------------+
class SigBridgeTransport
  {
private:
   static Context   *s_context;
   Socket           *m_socket;
   string            m_endpoint;
   int               m_errorNumber;
   string            m_errorText;

   bool              fail(const string action);
   static bool       ensureContext(void);

public:
                     SigBridgeTransport(void) : m_socket(NULL),m_errorNumber(0) {}
                    ~SigBridgeTransport(void) { close(); }

   bool              open(const string endpoint,const string serverKey,const string publicKey,const string secretKey);
   void              close(void);
   bool              isOpen(void) const { return(m_socket!=NULL); }
   bool              send(const uchar &payload[]);
   int               receive(uchar &payload[],const uint timeoutMs);
   int               errorNumber(void) const { return(m_errorNumber); }
   string            errorText(void) const { return(m_errorText); }

   static void       releaseContext(void);
  };

Context *SigBridgeTransport::s_context=NULL;

//+------------------------------------------------------------------+
//| Records and prints the ZeroMQ error of a failed `action`.        |
//+------------------------------------------------------------------+
bool SigBridgeTransport::fail(const string action)
  {
   m_errorNumber=Zmq::errorNumber();
   m_errorText=Zmq::errorMessage(m_errorNumber);
   PrintFormat("SigBridge: %s %s failed, ZeroMQ error %d: %s",action,m_endpoint,m_errorNumber,m_errorText);
   return(false);
  }
//+------------------------------------------------------------------+
//| Creates this program's reference to the shared context.          |
//+------------------------------------------------------------------+
bool SigBridgeTransport::ensureContext(void)
  {
   if(s_context!=NULL)
      return(true);
// MQL5 note: every EA and script of a terminal runs in one process, so all of them should share
// one libzmq context; mql-zmq counts the references in temporary terminal global variables.
   s_context=new Context(SIGBRIDGE_ZMQ_CONTEXT_KEY);
   if(CheckPointer(s_context)!=POINTER_DYNAMIC || s_context.ref()==0)
     {
      int error=Zmq::errorNumber();
      PrintFormat("SigBridge: cannot create the ZeroMQ context, ZeroMQ error %d: %s",error,Zmq::errorMessage(error));
      if(CheckPointer(s_context)==POINTER_DYNAMIC)
         delete s_context;
      s_context=NULL;
      return(false);
     }
   return(true);
  }
//+------------------------------------------------------------------+
//| Drops this program's reference to the shared context; libzmq     |
//| terminates it when the last program drops its reference.         |
//| Call it only when the program leaves memory, not on a chart      |
//| symbol or timeframe change.                                      |
//+------------------------------------------------------------------+
void SigBridgeTransport::releaseContext(void)
  {
   if(CheckPointer(s_context)==POINTER_DYNAMIC)
      delete s_context;
   s_context=NULL;
  }
//+------------------------------------------------------------------+
//| Creates a DEALER socket and connects it to `endpoint`. With a    |
//| `serverKey` the socket uses CURVE: the daemon's public key and   |
//| this client's key pair, each as 40 Z85 characters.               |
//| ZeroMQ connects in the background, so success does not mean the  |
//| daemon is up; a missing reply does.                              |
//+------------------------------------------------------------------+
bool SigBridgeTransport::open(const string endpoint,const string serverKey,const string publicKey,
                              const string secretKey)
  {
   close();
   m_endpoint=endpoint;
   m_errorNumber=0;
   m_errorText="";
   if(!ensureContext())
     {
      m_errorNumber=-1;
      m_errorText="no ZeroMQ context";
      return(false);
     }
   m_socket=new Socket(s_context,ZMQ_DEALER);
   if(CheckPointer(m_socket)!=POINTER_DYNAMIC || !m_socket.valid())
     {
      fail("creating a DEALER socket for");
      close();
      return(false);
     }
// Linger 0: close() drops unsent requests at once, so a request queued for a dead daemon
// never reaches the next one.
   if(!m_socket.setLinger(0))
     {
      fail("setting ZMQ_LINGER on the socket for");
      close();
      return(false);
     }
// MQL5 note: CURVE needs libsodium.dll next to libzmq.dll in MQL5/Libraries.
   if(serverKey!="" &&
      (!m_socket.setCurveServerKey(serverKey) || !m_socket.setCurvePublicKey(publicKey) ||
       !m_socket.setCurveSecretKey(secretKey)))
     {
      fail("setting the CURVE keys of the socket for");
      close();
      return(false);
     }
   if(!m_socket.connect(endpoint))
     {
      fail("connecting to");
      close();
      return(false);
     }
   return(true);
  }
//+------------------------------------------------------------------+
void SigBridgeTransport::close(void)
  {
   if(CheckPointer(m_socket)==POINTER_DYNAMIC)
      delete m_socket;
   m_socket=NULL;
  }
//+------------------------------------------------------------------+
//| Queues one frame without blocking. ZeroMQ queues it even while   |
//| the daemon is down; false means the queue is full or the socket  |
//| failed.                                                          |
//+------------------------------------------------------------------+
bool SigBridgeTransport::send(const uchar &payload[])
  {
   if(m_socket==NULL)
     {
      m_errorNumber=-1;
      m_errorText="the socket is not open";
      return(false);
     }
   if(!m_socket.send(payload,true))
      return(fail("sending a request to"));
   return(true);
  }
//+------------------------------------------------------------------+
//| Waits up to `timeoutMs` for one frame and copies it to `payload`.|
//| Returns 1 for a frame, 0 when none arrived, -1 on failure.       |
//+------------------------------------------------------------------+
int SigBridgeTransport::receive(uchar &payload[],const uint timeoutMs)
  {
   if(m_socket==NULL)
     {
      m_errorNumber=-1;
      m_errorText="the socket is not open";
      return(-1);
     }
   PollItem items[1];
   m_socket.fillPollItem(items[0],ZMQ_POLLIN);
   int ready=Socket::poll(items,(long)timeoutMs);
   if(ready<0)
     {
      fail("polling the socket for");
      return(-1);
     }
   if(ready==0 || !items[0].hasInput())
      return(0);

   ZmqMsg message;
   if(!m_socket.recv(message,true))
     {
      fail("receiving a reply from");
      return(-1);
     }
// MQL5 note: ZmqMsg::getData() grows the array but never shrinks it, so size it first.
   int size=(int)message.size();
   if(ArrayResize(payload,size)!=size)
     {
      PrintFormat("SigBridge: cannot resize the reply buffer to %d bytes, error %d",size,GetLastError());
      return(-1);
     }
   if(size>0)
      message.getData(payload);

// The daemon replies with one frame; drain any further parts so they cannot pose as replies.
   bool multipart=message.more();
   bool more=multipart;
   while(more)
     {
      ZmqMsg extra;
      if(!m_socket.recv(extra,true))
        {
         fail("draining a multipart reply from");
         return(-1);
        }
      more=extra.more();
     }
   if(multipart)
     {
      m_errorNumber=-1;
      m_errorText="the daemon sent a multipart reply";
      PrintFormat("SigBridge: %s sent a multipart reply; expected one frame",m_endpoint);
      return(-1);
     }
   return(1);
  }
//+------------------------------------------------------------------+
