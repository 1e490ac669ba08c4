//+------------------------------------------------------------------+
//| ClientReplies.mqh                                                |
//| SigBridgeClient's reply handling: welcome, signal and status,    |
//| error replies, timeouts and the reconnect delay.                 |
//+------------------------------------------------------------------+
// Included at the end of Client.mqh, after the class declaration.

//+------------------------------------------------------------------+
//| Takes one reply, if one arrives within `pollMs`, and applies it. |
//+------------------------------------------------------------------+
void SigBridgeClient::receive(const uint pollMs)
  {
   int received=m_transport.receive(m_reply,pollMs);
   if(received<0)
     {
      setError(StringFormat("cannot receive from %s: ZeroMQ error %d: %s",m_settings.endpoint,
                            m_transport.errorNumber(),m_transport.errorText()),0);
      scheduleReconnect(false);
      return;
     }
   if(received==0)
      return;

   SigBridgeReply reply;
   string error="";
   if(!SigBridgeParseReply(m_reply,ArraySize(m_reply),reply,error))
     {
      setError(StringFormat("invalid reply to %s id=%I64d from %s: %s",m_pendingType,m_pendingId,
                            m_settings.endpoint,error),0);
      scheduleReconnect(true);
      return;
     }
   // A reply without an id is an error about a request the daemon could not read, so about the pending one.
   if(reply.hasId && reply.id!=m_pendingId)
     {
      PrintFormat("SigBridge: discarding a stale %s reply id=%I64d while waiting for id=%I64d",
                  reply.type,reply.id,m_pendingId);
      return;
     }
   if(reply.type=="error")
      onError(reply);
   else if(m_state==SIGBRIDGE_CLIENT_WAITING_WELCOME && reply.type=="welcome")
      onWelcome(reply);
   else if(m_state==SIGBRIDGE_CLIENT_WAITING_BARS && (reply.type=="signal" || reply.type=="status"))
      onBarsReply(reply);
   else
     {
      setError(StringFormat("unexpected %s reply to %s id=%I64d",reply.type,m_pendingType,m_pendingId),0);
      scheduleReconnect(true);
     }
  }
//+------------------------------------------------------------------+
void SigBridgeClient::onWelcome(const SigBridgeReply &reply)
  {
   if(reply.symbol!=m_settings.hello.symbol || reply.timeframe!=m_settings.hello.timeframe)
     {
      setError(StringFormat("welcome is for %s %s, expected %s %s",reply.symbol,reply.timeframe,
                            m_settings.hello.symbol,m_settings.hello.timeframe),0);
      scheduleReconnect(true);
      return;
     }
   m_acknowledgedTime=reply.hasLastBarTime ? reply.lastBarTime : 0;
   m_maxBarsPerMessage=(reply.maxBarsPerMessage>INT_MAX) ? INT_MAX : (int)reply.maxBarsPerMessage;
   if(m_chunkBars<1 || m_chunkBars>m_maxBarsPerMessage)
      m_chunkBars=m_maxBarsPerMessage;
   m_reconnectDelayMs=m_settings.reconnectMinMs;
   m_resyncing=false;
   m_lastError="";
   m_lastErrorCode=0;
   updateStatus(reply.state,reply.message,reply.barsNeeded,reply.hasModelVersion ? reply.modelVersion : 0);
   // A reply lost before a reconnect may have carried the signal of the last held bar.
   m_requestLatestSignal=(reply.state=="ready" && reply.hasLastBarTime &&
                          (!m_hasSignal || m_signal.barTime<reply.lastBarTime));
   if(!m_greeted)
      PrintFormat("SigBridge: connected to %s (%s) as client=%s %s %s; the daemon holds %I64d bars%s",
                  m_settings.endpoint,reply.server,m_settings.hello.client,reply.symbol,reply.timeframe,
                  reply.barsHeld,reply.hasLastBarTime ? " up to "+TimeToString(reply.lastBarTime) : "");
   m_greeted=true;
   m_state=SIGBRIDGE_CLIENT_IDLE;
  }
//+------------------------------------------------------------------+
void SigBridgeClient::onBarsReply(const SigBridgeReply &reply)
  {
   if(reply.accepted+reply.duplicates!=m_sentCount)
     {
      setError(StringFormat("the daemon acknowledged %I64d of %d bars; asking it which bars it holds",
                            reply.accepted+reply.duplicates,m_sentCount),0);
      sendHello();
      return;
     }
   m_acknowledgedTime=m_sentLastTime;
   m_requestLatestSignal=false;
   m_resyncing=false;
   if(m_isolateUntil>0 && m_acknowledgedTime>=m_isolateUntil)
      m_isolateUntil=0;

   if(reply.type=="signal")
     {
      m_signal.barTime=reply.barTime;
      m_signal.direction=reply.direction;
      m_signal.score=reply.score;
      m_signal.distance=reply.distance;
      m_signal.modelVersion=reply.modelVersion;
      m_signal.latencyUs=reply.latencyUs;
      m_hasSignal=true;
      m_signalUnread=true;
      updateStatus("ready",StringFormat("serving model_version=%I64d",reply.modelVersion),0,reply.modelVersion);
     }
   else
      updateStatus(reply.state,reply.message,reply.barsNeeded,reply.hasModelVersion ? reply.modelVersion : 0);
   m_state=SIGBRIDGE_CLIENT_IDLE;
  }
//+------------------------------------------------------------------+
//| Applies an error reply: resend smaller or without the invalid    |
//| bar where that can help, otherwise reconnect later.              |
//+------------------------------------------------------------------+
void SigBridgeClient::onError(const SigBridgeReply &reply)
  {
   long code=reply.errorCode;
   setError(StringFormat("the daemon rejected %s id=%I64d: %s (%I64d), field=%s, row=%s: %s",m_pendingType,m_pendingId,
                         reply.errorName,code,reply.hasErrorField ? reply.errorField : "none",
                         reply.hasErrorRow ? IntegerToString(reply.errorRow) : "none",reply.message),code);
   bool barsPending=(m_state==SIGBRIDGE_CLIENT_WAITING_BARS);

   bool conflict=(code==SIGBRIDGE_ERROR_BARS_OUT_OF_ORDER || code==SIGBRIDGE_ERROR_BAR_CONFLICT);
   if(barsPending && conflict && !m_resyncing)
     {
      // The welcome gives the daemon's last bar, and the next message starts after it, so it
      // cannot conflict with a bar the daemon has.
      m_resyncing=true;
      sendHello();
      return;
     }
   if(barsPending && code==SIGBRIDGE_ERROR_MESSAGE_TOO_LARGE && m_sentCount>1)
     {
      m_chunkBars=m_sentCount/2;
      m_state=SIGBRIDGE_CLIENT_IDLE;
      return;
     }
   if(barsPending && code==SIGBRIDGE_ERROR_INVALID_BAR)
     {
      if(m_sentCount>1)
        {
         // The reply does not say which bar; resend one at a time to find it.
         m_isolateUntil=m_sentLastTime;
         PrintFormat("SigBridge: resending %d bars one at a time to skip the invalid one",m_sentCount);
        }
      else
        {
         PrintFormat("SigBridge: skipping the bar at %s that the daemon rejected as invalid",
                     TimeToString(m_sentLastTime));
         m_acknowledgedTime=m_sentLastTime;
         // The rest of the rejected message goes in full messages again; another invalid bar
         // in it starts a new search.
         m_isolateUntil=0;
        }
      m_state=SIGBRIDGE_CLIENT_IDLE;
      return;
     }
   if(code==SIGBRIDGE_ERROR_UNKNOWN_STREAM)
      PrintFormat("SigBridge: another connection said hello as client=%s for %s %s; give each EA its own client name",
                  m_settings.hello.client,m_settings.hello.symbol,m_settings.hello.timeframe);
   bool retryable=(code==SIGBRIDGE_ERROR_INTERNAL_ERROR || code==SIGBRIDGE_ERROR_UNKNOWN_STREAM || conflict);
   scheduleReconnect(!retryable);
  }
//+------------------------------------------------------------------+
void SigBridgeClient::onTimeout(void)
  {
   m_timeouts++;
   uint waited=(m_state==SIGBRIDGE_CLIENT_WAITING_BARS && m_sentCount>1) ?
               m_settings.backfillTimeoutMs : m_settings.replyTimeoutMs;
   setError(StringFormat("no reply to %s id=%I64d from %s within %u ms",m_pendingType,m_pendingId,
                         m_settings.endpoint,waited),0);
// The daemon's ZeroMQ drops a frame above its size limit without a reply, so a large message
// that timed out is resent at half the size.
   if(m_state==SIGBRIDGE_CLIENT_WAITING_BARS && m_sentCount>1)
      m_chunkBars=m_sentCount/2;
   scheduleReconnect(false);
  }
//+------------------------------------------------------------------+
//| Closes the socket; the next connect waits the current delay, or  |
//| the longest one after a reply the client cannot act on.          |
//+------------------------------------------------------------------+
void SigBridgeClient::scheduleReconnect(const bool longest)
  {
   m_transport.close();
   m_state=SIGBRIDGE_CLIENT_DISCONNECTED;
   uint delay=longest ? m_settings.reconnectMaxMs : m_reconnectDelayMs;
   m_reconnectAt=GetTickCount64()+delay;
   if(!longest)
      m_reconnectDelayMs=(delay>m_settings.reconnectMaxMs/2) ? m_settings.reconnectMaxMs : 2*delay;
   PrintFormat("SigBridge: reconnecting to %s in %u ms",m_settings.endpoint,delay);
  }
//+------------------------------------------------------------------+
void SigBridgeClient::setError(const string text,const long code)
  {
   m_lastError=text;
   m_lastErrorCode=code;
   PrintFormat("SigBridge: %s",text);
  }
//+------------------------------------------------------------------+
//| Stores the daemon's stream state; prints it when it changes.     |
//+------------------------------------------------------------------+
void SigBridgeClient::updateStatus(const string streamState,const string message,const long barsNeeded,
                                   const long modelVersion)
  {
   if(streamState!=m_daemonState)
      PrintFormat("SigBridge: daemon state %s: %s",streamState,message);
   m_daemonState=streamState;
   m_daemonMessage=message;
   m_barsNeeded=barsNeeded;
   m_modelVersion=modelVersion;
  }
//+------------------------------------------------------------------+
//| Prints a failed history read once until a read succeeds again.   |
//+------------------------------------------------------------------+
void SigBridgeClient::warnHistory(const string function)
  {
   if(m_historyWarned)
      return;
   m_historyWarned=true;
   PrintFormat("SigBridge: %s(%s) found no closed bars yet, error %d; retrying on the next call",
               function,m_settings.hello.symbol,GetLastError());
  }
//+------------------------------------------------------------------+
