//+------------------------------------------------------------------+
//| Client.mqh                                                       |
//| SigBridgeClient: the request and reply state machine of one      |
//| stream (client name, symbol, timeframe).                         |
//|                                                                  |
//| The daemon's welcome gives the time of the last bar it has of    |
//| the stream. The client then sends every later closed bar of the  |
//| chart, in messages of at most max_bars_per_message bars, one     |
//| request at a time. A bar counts as acknowledged only when its    |
//| signal or status reply arrives. After a timeout the client       |
//| closes the socket, waits a growing delay, opens a new socket,    |
//| says hello again and sends what the new welcome shows missing.   |
//+------------------------------------------------------------------+
#include "ClientTypes.mqh"
#include "Replies.mqh"
#include "Transport.mqh"

//+------------------------------------------------------------------+
//| Index of the first of `count` bars (oldest first) whose time is  |
//| later than `time`; `count` when there is none.                   |
//+------------------------------------------------------------------+
int SigBridgeFirstBarAfter(const MqlRates &rates[],const int count,const datetime time)
  {
   int low=0;
   int high=count;
   while(low<high)
     {
      int middle=(low+high)/2;
      if(rates[middle].time<=time)
         low=middle+1;
      else
         high=middle;
     }
   return(low);
  }

//+------------------------------------------------------------------+
//| Client of one stream. Call process() from OnTimer and OnTick; it |
//| waits at most settings.pollTimeoutMs for the daemon.             |
//+------------------------------------------------------------------+
class SigBridgeClient
  {
private:
   SigBridgeSettings m_settings;
   SigBridgeTransport m_transport;
   MsgpackWriter     m_writer;
   uchar             m_request[];
   uchar             m_reply[];
   ENUM_SIGBRIDGE_CLIENT_STATE m_state;
   //--- the request in flight
   long              m_nextId;
   long              m_pendingId;
   string            m_pendingType;
   ulong             m_deadline;          // GetTickCount64() value at which the request times out
   int               m_sentCount;         // bars in the pending bars request
   datetime          m_sentLastTime;      // time of its last bar
   //--- reconnection
   ulong             m_reconnectAt;       // GetTickCount64() value of the next connect
   uint              m_reconnectDelayMs;  // delay after the next failure
   ulong             m_statusRefreshAt;
   bool              m_resyncing;         // hello sent after BARS_OUT_OF_ORDER or BAR_CONFLICT
   bool              m_greeted;           // a welcome arrived on the current socket
   //--- what the daemon holds
   datetime          m_acknowledgedTime;  // time of the daemon's last bar of the stream; 0 for none
   int               m_maxBarsPerMessage;
   int               m_chunkBars;         // bars per message; halved when a larger message failed, never grown back
   datetime          m_isolateUntil;      // while not 0, bars go one at a time up to this time
   bool              m_requestLatestSignal;
   //--- daemon status
   string            m_daemonState;
   string            m_daemonMessage;
   long              m_barsNeeded;
   long              m_modelVersion;      // 0 while the daemon has no model
   //--- latest signal
   SigBridgeSignal   m_signal;
   bool              m_hasSignal;
   bool              m_signalUnread;
   //--- diagnostics
   string            m_lastError;
   long              m_lastErrorCode;
   int               m_connects;
   int               m_timeouts;
   long              m_requestsSent;
   bool              m_historyWarned;

   void              reset(void);
   void              step(const uint pollMs);
   bool              connect(void);
   bool              sendHello(void);
   bool              sendBars(void);
   bool              sendRequest(const long id,const string type,const uint timeoutMs);
   void              receive(const uint pollMs);
   void              onWelcome(const SigBridgeReply &reply);
   void              onBarsReply(const SigBridgeReply &reply);
   void              onError(const SigBridgeReply &reply);
   void              onTimeout(void);
   void              scheduleReconnect(const bool longest);
   void              setError(const string text,const long code);
   void              updateStatus(const string streamState,const string message,const long barsNeeded,
                                  const long modelVersion);
   void              warnHistory(const string function);
   datetime          sendAfterTime(void) const;
   bool              isWaiting(void) const;

public:
                     SigBridgeClient(void);

   bool              init(const SigBridgeSettings &settings);
   void              process(void);
   bool              waitForSync(const uint timeoutMs);
   void              shutdown(void);
   void              setUtcOffset(const int seconds) { m_settings.hello.utcOffset=seconds; }
   bool              hasUnsentBars(void);

   bool              takeSignal(SigBridgeSignal &signal);
   bool              latestSignal(SigBridgeSignal &signal) const;

   ENUM_SIGBRIDGE_CLIENT_STATE state(void) const { return(m_state); }
   string            daemonState(void) const { return(m_daemonState); }
   string            daemonMessage(void) const { return(m_daemonMessage); }
   long              barsNeeded(void) const { return(m_barsNeeded); }
   long              modelVersion(void) const { return(m_modelVersion); }
   datetime          acknowledgedTime(void) const { return(m_acknowledgedTime); }
   string            lastError(void) const { return(m_lastError); }
   long              lastErrorCode(void) const { return(m_lastErrorCode); }
   uint              reconnectDelayMs(void) const { return(m_reconnectDelayMs); }
   long              reconnectInMs(void) const;
   int               chunkBars(void) const { return(m_chunkBars); }
   int               connects(void) const { return(m_connects); }
   int               timeouts(void) const { return(m_timeouts); }
   long              requestsSent(void) const { return(m_requestsSent); }
   long              pendingId(void) const { return(isWaiting() ? m_pendingId : 0); }
  };
//+------------------------------------------------------------------+
SigBridgeClient::SigBridgeClient(void)
  {
   SigBridgeDefaultSettings(m_settings);
   reset();
  }
//+------------------------------------------------------------------+
//| Forgets the stream: the EA object outlives a chart timeframe     |
//| change, and the new stream must not inherit the old one's state. |
//+------------------------------------------------------------------+
void SigBridgeClient::reset(void)
  {
   m_transport.close();
   m_state=SIGBRIDGE_CLIENT_DISCONNECTED;
   m_nextId=1;
   m_pendingId=0;
   m_pendingType="";
   m_deadline=0;
   m_sentCount=0;
   m_sentLastTime=0;
   m_reconnectAt=0;
   m_reconnectDelayMs=m_settings.reconnectMinMs;
   m_statusRefreshAt=0;
   m_resyncing=false;
   m_greeted=false;
   m_acknowledgedTime=0;
   m_maxBarsPerMessage=0;
   m_chunkBars=0;
   m_isolateUntil=0;
   m_requestLatestSignal=false;
   m_daemonState="";
   m_daemonMessage="";
   m_barsNeeded=0;
   m_modelVersion=0;
   m_hasSignal=false;
   m_signalUnread=false;
   m_signal.barTime=0;
   m_signal.direction=0;
   m_signal.score=0.0;
   m_signal.distance=0.0;
   m_signal.modelVersion=0;
   m_signal.latencyUs=0;
   m_lastError="";
   m_lastErrorCode=0;
   m_connects=0;
   m_timeouts=0;
   m_requestsSent=0;
   m_historyWarned=false;
  }
//+------------------------------------------------------------------+
//| Stores validated settings; the first process() call connects.    |
//+------------------------------------------------------------------+
bool SigBridgeClient::init(const SigBridgeSettings &settings)
  {
   string problem=SigBridgeValidateSettings(settings);
   if(problem!="")
     {
      PrintFormat("SigBridge: invalid settings: %s",problem);
      return(false);
     }
   m_settings=settings;
   reset();
   return(true);
  }
//+------------------------------------------------------------------+
//| One non-blocking step: connect when due, take a reply, send the  |
//| next closed bars.                                                |
//+------------------------------------------------------------------+
void SigBridgeClient::process(void)
  {
   step(m_settings.pollTimeoutMs);
  }
//+------------------------------------------------------------------+
//| Strategy Tester lockstep: steps until every closed bar is        |
//| acknowledged or `timeoutMs` has passed. Returns true when synced.|
//| It does not wait out a reconnect delay: a daemon that is down    |
//| costs one timeout, not one per tick.                             |
//+------------------------------------------------------------------+
bool SigBridgeClient::waitForSync(const uint timeoutMs)
  {
   ulong deadline=GetTickCount64()+timeoutMs;
   while(true)
     {
      if(m_state==SIGBRIDGE_CLIENT_IDLE && !hasUnsentBars())
         return(true);
      ulong now=GetTickCount64();
      if(now>=deadline)
         return(false);
      if(m_state==SIGBRIDGE_CLIENT_DISCONNECTED && now<m_reconnectAt)
         return(false);
      long requestsBefore=m_requestsSent;
      bool wasIdle=(m_state==SIGBRIDGE_CLIENT_IDLE);
      step((uint)(deadline-now));
      // Idle with bars to send, yet nothing sent: the chart history is not readable yet.
      if(wasIdle && m_state==SIGBRIDGE_CLIENT_IDLE && m_requestsSent==requestsBefore)
         return(false);
     }
   return(false);
  }
//+------------------------------------------------------------------+
//| Closes the socket. A later process() call reconnects.            |
//+------------------------------------------------------------------+
void SigBridgeClient::shutdown(void)
  {
   m_transport.close();
   m_state=SIGBRIDGE_CLIENT_DISCONNECTED;
   m_reconnectAt=0;
  }
//+------------------------------------------------------------------+
//| Copies the latest signal once: true only when it is new.         |
//+------------------------------------------------------------------+
bool SigBridgeClient::takeSignal(SigBridgeSignal &signal)
  {
   if(!m_signalUnread)
      return(false);
   signal=m_signal;
   m_signalUnread=false;
   return(true);
  }
//+------------------------------------------------------------------+
bool SigBridgeClient::latestSignal(SigBridgeSignal &signal) const
  {
   if(!m_hasSignal)
      return(false);
   signal=m_signal;
   return(true);
  }
//+------------------------------------------------------------------+
//| Milliseconds until the next connect; 0 unless disconnected.      |
//+------------------------------------------------------------------+
long SigBridgeClient::reconnectInMs(void) const
  {
   if(m_state!=SIGBRIDGE_CLIENT_DISCONNECTED)
      return(0);
   ulong now=GetTickCount64();
   return(m_reconnectAt>now ? (long)(m_reconnectAt-now) : 0);
  }
//+------------------------------------------------------------------+
bool SigBridgeClient::isWaiting(void) const
  {
   return(m_state==SIGBRIDGE_CLIENT_WAITING_WELCOME || m_state==SIGBRIDGE_CLIENT_WAITING_BARS);
  }
//+------------------------------------------------------------------+
//| Bars later than this time are still to be sent. While the latest |
//| signal is requested, that includes the last held bar, because    |
//| the daemon answers a resent bar with its signal again.           |
//+------------------------------------------------------------------+
datetime SigBridgeClient::sendAfterTime(void) const
  {
   if(m_requestLatestSignal && m_acknowledgedTime>0)
      return(m_acknowledgedTime-1);
   return(m_acknowledgedTime);
  }
//+------------------------------------------------------------------+
//| True when the chart has a closed bar the daemon has not          |
//| acknowledged. Shift 1 is the last closed bar; shift 0 is forming.|
//+------------------------------------------------------------------+
bool SigBridgeClient::hasUnsentBars(void)
  {
   datetime lastClosed=iTime(m_settings.hello.symbol,m_settings.period,1);
   return(lastClosed>0 && lastClosed>sendAfterTime());
  }
//+------------------------------------------------------------------+
void SigBridgeClient::step(const uint pollMs)
  {
   if(m_state==SIGBRIDGE_CLIENT_DISCONNECTED)
     {
      if(GetTickCount64()<m_reconnectAt)
         return;
      if(!connect())
         return;
     }
   if(isWaiting())
     {
      ulong now=GetTickCount64();
      uint wait=0;
      if(m_deadline>now)
         wait=(m_deadline-now<pollMs) ? (uint)(m_deadline-now) : pollMs;
      receive(wait);
      if(isWaiting() && GetTickCount64()>=m_deadline)
         onTimeout();
     }
   if(m_state!=SIGBRIDGE_CLIENT_IDLE)
      return;
// In these states the welcome changes without new bars, so the client asks for it now and then.
   bool awaitingModel=(m_daemonState=="queued" || m_daemonState=="training" || m_daemonState=="no_model");
   if(awaitingModel && GetTickCount64()>=m_statusRefreshAt)
     {
      sendHello();
      return;
     }
   sendBars();
  }
//+------------------------------------------------------------------+
//| Opens a new socket and says hello.                               |
//+------------------------------------------------------------------+
bool SigBridgeClient::connect(void)
  {
   if(!m_transport.open(m_settings.endpoint,m_settings.curveServerKey,m_settings.curvePublicKey,
                        m_settings.curveSecretKey))
     {
      setError(StringFormat("cannot connect to %s: ZeroMQ error %d: %s",m_settings.endpoint,
                            m_transport.errorNumber(),m_transport.errorText()),0);
      scheduleReconnect(false);
      return(false);
     }
   m_connects++;
   m_greeted=false;
   return(sendHello());
  }
//+------------------------------------------------------------------+
bool SigBridgeClient::sendHello(void)
  {
   long id=m_nextId;
   m_nextId++;
   if(!SigBridgeBuildHello(m_writer,id,m_settings.hello))
     {
      setError("cannot encode the hello request",0);
      scheduleReconnect(true);
      return(false);
     }
   m_statusRefreshAt=GetTickCount64()+m_settings.statusRefreshMs;
   return(sendRequest(id,"hello",m_settings.replyTimeoutMs));
  }
//+------------------------------------------------------------------+
//| Sends the oldest closed bars the daemon lacks. With none, and    |
//| the latest signal lost, it resends the last held bar instead.    |
//+------------------------------------------------------------------+
bool SigBridgeClient::sendBars(void)
  {
   ResetLastError();
   datetime lastClosed=iTime(m_settings.hello.symbol,m_settings.period,1);
   if(lastClosed==0)
     {
      warnHistory("iTime");
      return(false);
     }
   if(lastClosed<=sendAfterTime())
     {
      m_requestLatestSignal=false;
      return(false);
     }
// MQL5 note: CopyRates() may return -1 while the terminal still loads or synchronizes history;
// the next call tries again.
   MqlRates rates[];
   int copied=CopyRates(m_settings.hello.symbol,m_settings.period,1,m_settings.historyBars,rates);
   if(copied<=0)
     {
      warnHistory("CopyRates");
      return(false);
     }
   m_historyWarned=false;
   int first=SigBridgeFirstBarAfter(rates,copied,m_acknowledgedTime);
   if(first>=copied && m_requestLatestSignal && first>0 && rates[first-1].time==m_acknowledgedTime)
      first--;
   m_requestLatestSignal=false;
   if(first>=copied)
      return(false);
   int count=copied-first;
   int limit=(m_isolateUntil>0) ? 1 : m_chunkBars;
   if(count>limit)
      count=limit;

   long id=m_nextId;
   m_nextId++;
   if(!SigBridgeBuildBars(m_writer,id,m_settings.hello.symbol,m_settings.hello.timeframe,rates,first,count))
     {
      setError(StringFormat("cannot encode %d bars",count),0);
      return(false);
     }
   m_sentCount=count;
   m_sentLastTime=rates[first+count-1].time;
   return(sendRequest(id,"bars",count>1 ? m_settings.backfillTimeoutMs : m_settings.replyTimeoutMs));
  }
//+------------------------------------------------------------------+
bool SigBridgeClient::sendRequest(const long id,const string type,const uint timeoutMs)
  {
   if(!m_writer.copyTo(m_request))
     {
      setError(StringFormat("cannot copy the %s request id=%I64d",type,id),0);
      scheduleReconnect(false);
      return(false);
     }
   if(!m_transport.send(m_request))
     {
      setError(StringFormat("cannot send %s id=%I64d to %s: ZeroMQ error %d: %s",type,id,m_settings.endpoint,
                            m_transport.errorNumber(),m_transport.errorText()),0);
      scheduleReconnect(false);
      return(false);
     }
   m_pendingId=id;
   m_pendingType=type;
   m_deadline=GetTickCount64()+timeoutMs;
   m_requestsSent++;
   m_state=(type=="hello") ? SIGBRIDGE_CLIENT_WAITING_WELCOME : SIGBRIDGE_CLIENT_WAITING_BARS;
   return(true);
  }
#include "ClientReplies.mqh"
