//+------------------------------------------------------------------+
//| SigBridgeEA.mq5                                                  |
//| Sends the chart's closed bars to the sigbridge daemon over       |
//| ZeroMQ, shows the daemon's latest signal on the chart and, when  |
//| trading is on, opens and closes positions on it.                 |
//|                                                                  |
//| Needs the mql-zmq binding (MQL5/Include/Zmq, libzmq.dll and      |
//| libsodium.dll in MQL5/Libraries) and "Allow DLL imports".        |
//+------------------------------------------------------------------+
#property copyright   "sigbridge"
#property version     "1.00"
#property description "Streams closed bars to the sigbridge daemon and trades on its signals."
// MQL5 note: Strategy Tester agents load DLLs from their own MQL5/Libraries folder; these
// properties ask the terminal to hand both DLLs to its local agents.
#property tester_library "libzmq.dll"
#property tester_library "libsodium.dll"

#include <Trade/Trade.mqh>
#include <SigBridge/Client.mqh>

//--- inputs
input group "Daemon"
input string InpEndpoint="tcp://127.0.0.1:5555"; // Daemon endpoint (ZeroMQ)
input string InpClientName="";                    // Client name (empty: mt5-<account login>, plus a run number in the tester)
input int    InpHistoryBars=5000;                 // Closed bars sent as backfill
input uint   InpReplyTimeoutMs=3000;              // Reply timeout for hello and one bar, ms
input uint   InpBackfillTimeoutMs=20000;          // Reply timeout for a message of several bars, ms
input uint   InpReconnectMinMs=1000;              // First reconnect delay, ms (doubles up to the longest)
input uint   InpReconnectMaxMs=30000;             // Longest reconnect delay, ms
input uint   InpTesterTimeoutMs=120000;           // Strategy Tester: longest wait for each reply, ms
input string InpServerPublicKey="";               // CURVE: daemon public key (empty: no CURVE)
input string InpClientPublicKey="";               // CURVE: this terminal's public key
input string InpClientSecretKey="";               // CURVE: this terminal's secret key
input group "Trading"
input double InpSignalThreshold=0.1;              // Trade when |score| >= this threshold
input bool   InpTradeEnabled=false;               // Open and close positions on signals
input double InpLots=0.1;                         // Volume of each position, lots
input int    InpStopLossPoints=0;                 // Stop loss, points (0: none)
input int    InpTakeProfitPoints=0;               // Take profit, points (0: none)
input ulong  InpMagicNumber=73210001;             // Magic number of this EA's positions

//--- OnTimer period and the longest wait for a reply inside one event handler, ms.
#define SIGBRIDGE_TIMER_MS       100
#define SIGBRIDGE_POLL_MS        5
//--- Chart object that marks the latest signal.
#define SIGBRIDGE_ARROW_NAME     "SigBridge.Signal"
//--- Wingdings codes of OBJ_ARROW: up arrow, down arrow, dot.
#define SIGBRIDGE_ARROW_BUY      233
#define SIGBRIDGE_ARROW_SELL     234
#define SIGBRIDGE_ARROW_FLAT     159

SigBridgeClient g_client;
CTrade          g_trade;
bool            g_tester=false;
datetime        g_formingBarTime=0;   // open time of the forming bar at the last OnTick

//+------------------------------------------------------------------+
//| Returns "" when the inputs can be used, else what is wrong.      |
//+------------------------------------------------------------------+
string CheckInputs(void)
  {
   if(InpHistoryBars<1)
      return(StringFormat("InpHistoryBars must be at least 1, received %d",InpHistoryBars));
   if(InpReplyTimeoutMs==0 || InpBackfillTimeoutMs==0 || InpTesterTimeoutMs==0)
      return("InpReplyTimeoutMs, InpBackfillTimeoutMs and InpTesterTimeoutMs must be positive");
   if(InpReconnectMinMs==0 || InpReconnectMinMs>InpReconnectMaxMs)
      return(StringFormat("reconnect delays must satisfy 0 < InpReconnectMinMs <= InpReconnectMaxMs, received %u and %u",
                          InpReconnectMinMs,InpReconnectMaxMs));
   if(InpSignalThreshold<0.0 || InpSignalThreshold>=1.0)
      return(StringFormat("InpSignalThreshold must be in [0, 1), received %g",InpSignalThreshold));
   if(InpLots<=0.0)
      return(StringFormat("InpLots must be positive, received %g",InpLots));
   if(InpStopLossPoints<0 || InpTakeProfitPoints<0)
      return("InpStopLossPoints and InpTakeProfitPoints must be 0 (none) or positive");
   return("");
  }
//+------------------------------------------------------------------+
//| Broker server time minus UTC, rounded to a quarter hour.         |
//+------------------------------------------------------------------+
int ServerUtcOffset(void)
  {
// MQL5 note: TimeTradeServer() is estimated from the local clock, so the difference jitters by a
// few seconds; time zones are whole quarter hours. In the Strategy Tester TimeGMT() follows the
// simulated server time, so the offset is 0 there.
   long offset=(long)(TimeTradeServer()-TimeGMT());
   long quarters=(offset>=0) ? (offset+450)/900 : -((-offset+450)/900);
   return((int)(quarters*900));
  }
//+------------------------------------------------------------------+
//| Fills the client settings from the inputs and the chart.         |
//+------------------------------------------------------------------+
bool BuildSettings(SigBridgeSettings &settings)
  {
   SigBridgeDefaultSettings(settings);
   settings.endpoint=InpEndpoint;
   settings.curveServerKey=InpServerPublicKey;
   settings.curvePublicKey=InpClientPublicKey;
   settings.curveSecretKey=InpClientSecretKey;

   settings.hello.client=InpClientName;
   if(settings.hello.client=="")
     {
      settings.hello.client=StringFormat("mt5-%I64d",AccountInfoInteger(ACCOUNT_LOGIN));
      // The daemon keeps a stream's bars across runs. A backtest must resume neither the live
      // stream nor an earlier run's, so each run gets a name of its own.
      // MQL5 note: GetTickCount64() counts real milliseconds in the tester too.
      if(g_tester)
         settings.hello.client+=StringFormat("-test-%I64u",GetTickCount64());
     }
   settings.hello.symbol=_Symbol;
   settings.period=Period();
   settings.hello.timeframe=SigBridgeTimeframeName(settings.period);
   long digits=0;
   if(!SymbolInfoInteger(_Symbol,SYMBOL_DIGITS,digits))
     {
      PrintFormat("SigBridge: cannot read SYMBOL_DIGITS of %s, error %d",_Symbol,GetLastError());
      return(false);
     }
   double point=0.0;
   if(!SymbolInfoDouble(_Symbol,SYMBOL_POINT,point))
     {
      PrintFormat("SigBridge: cannot read SYMBOL_POINT of %s, error %d",_Symbol,GetLastError());
      return(false);
     }
   settings.hello.digits=(int)digits;
   settings.hello.point=point;
   settings.hello.utcOffset=ServerUtcOffset();

   settings.historyBars=InpHistoryBars;
   settings.reconnectMinMs=InpReconnectMinMs;
   settings.reconnectMaxMs=InpReconnectMaxMs;
   settings.pollTimeoutMs=SIGBRIDGE_POLL_MS;
// In the tester a reply may wait for a retraining when the daemon runs with --lockstep.
   settings.replyTimeoutMs=g_tester ? InpTesterTimeoutMs : InpReplyTimeoutMs;
   settings.backfillTimeoutMs=g_tester ? InpTesterTimeoutMs : InpBackfillTimeoutMs;
   return(true);
  }
//+------------------------------------------------------------------+
//| Expert initialization function                                   |
//+------------------------------------------------------------------+
int OnInit()
  {
   g_tester=(MQLInfoInteger(MQL_TESTER)!=0);
   string problem=CheckInputs();
   if(problem!="")
     {
      PrintFormat("SigBridge: invalid input: %s",problem);
      return(INIT_PARAMETERS_INCORRECT);
     }
   if(MQLInfoInteger(MQL_DLLS_ALLOWED)==0)
     {
      Print("SigBridge: DLL imports are not allowed; tick \"Allow DLL imports\" on the EA's Common tab, which the ZeroMQ binding needs");
      return(INIT_FAILED);
     }
   SigBridgeSettings settings;
   if(!BuildSettings(settings))
      return(INIT_FAILED);
   if(!g_client.init(settings))
      return(INIT_PARAMETERS_INCORRECT);

   g_trade.SetExpertMagicNumber(InpMagicNumber);
   g_trade.SetMarginMode();
   if(!g_trade.SetTypeFillingBySymbol(_Symbol))
      PrintFormat("SigBridge: cannot choose a filling mode for %s, error %d; CTrade keeps its default",
                  _Symbol,GetLastError());

   g_formingBarTime=iTime(_Symbol,_Period,0);
   if(g_tester)
     {
      // Lockstep: the backfill and the first signal before the first tick.
      if(!g_client.waitForSync(InpTesterTimeoutMs))
         PrintFormat("SigBridge: the daemon did not acknowledge the backfill within %u ms: %s",
                     InpTesterTimeoutMs,g_client.lastError());
     }
   else
     {
      if(!EventSetMillisecondTimer(SIGBRIDGE_TIMER_MS))
        {
         PrintFormat("SigBridge: cannot start a %d ms timer, error %d",SIGBRIDGE_TIMER_MS,GetLastError());
         return(INIT_FAILED);
        }
      g_client.process();
     }
// No trading from OnInit: a tick with current prices has not arrived yet.
   HandleSignal(false);
   ShowStatus();
   return(INIT_SUCCEEDED);
  }
//+------------------------------------------------------------------+
//| Expert deinitialization function                                 |
//+------------------------------------------------------------------+
void OnDeinit(const int reason)
  {
   EventKillTimer();
   g_client.shutdown();
// MQL5 note: on a symbol or timeframe change the EA stays loaded and OnInit runs again, so the
// shared ZeroMQ context is kept for it; any other reason unloads the program.
   if(reason!=REASON_CHARTCHANGE)
     {
      SigBridgeTransport::releaseContext();
      if(!ObjectDelete(0,SIGBRIDGE_ARROW_NAME) && GetLastError()!=ERR_OBJECT_NOT_FOUND)
         PrintFormat("SigBridge: cannot delete the signal arrow, error %d",GetLastError());
     }
   Comment("");
  }
//+------------------------------------------------------------------+
//| Expert tick function                                             |
//+------------------------------------------------------------------+
void OnTick()
  {
   datetime forming=iTime(_Symbol,_Period,0);
   bool newBar=(forming!=0 && forming!=g_formingBarTime);
   if(newBar)
     {
      g_formingBarTime=forming;
      g_client.setUtcOffset(ServerUtcOffset());
     }
   if(g_tester)
     {
      // Lockstep: the signal of the bar that just closed arrives before the next tick.
      if(newBar && !g_client.waitForSync(InpTesterTimeoutMs))
         PrintFormat("SigBridge: no signal for the bar closed before %s within %u ms: %s",
                     TimeToString(forming),InpTesterTimeoutMs,g_client.lastError());
     }
   else
      g_client.process();
   HandleSignal(true);
   if(newBar || !g_tester)
      ShowStatus();
  }
//+------------------------------------------------------------------+
//| Timer function: polls the daemon between ticks                   |
//+------------------------------------------------------------------+
void OnTimer()
  {
   g_client.process();
   HandleSignal(true);
   ShowStatus();
  }
//+------------------------------------------------------------------+
//| Draws a new signal and, when allowed, trades on it.              |
//+------------------------------------------------------------------+
void HandleSignal(const bool allowTrading)
  {
   SigBridgeSignal signal;
   if(!g_client.takeSignal(signal))
      return;
   DrawSignal(signal);
   if(!InpTradeEnabled || !allowTrading)
      return;
// A signal for an older bar arrives during the backfill or after a reconnect: too late to trade.
   datetime lastClosed=iTime(_Symbol,_Period,1);
   if(signal.barTime!=lastClosed)
     {
      PrintFormat("SigBridge: not trading on the signal of %s; the last closed bar is %s",
                  TimeToString(signal.barTime),TimeToString(lastClosed));
      return;
     }
   int direction=SignalDirection(signal.score);
   if(direction!=0)
      ApplyDirection(direction);
  }
//+------------------------------------------------------------------+
//| +1 buy, -1 sell, 0 when |score| is below InpSignalThreshold.     |
//+------------------------------------------------------------------+
int SignalDirection(const double score)
  {
   if(MathAbs(score)<InpSignalThreshold)
      return(0);
   return(score>0.0 ? 1 : -1);
  }
//+------------------------------------------------------------------+
//| Closes this EA's positions against `direction` and opens one in  |
//| it unless one is open. Repeating a signal changes nothing.       |
//+------------------------------------------------------------------+
void ApplyDirection(const int direction)
  {
   ENUM_POSITION_TYPE wanted=(direction>0) ? POSITION_TYPE_BUY : POSITION_TYPE_SELL;
   bool holding=false;
   for(int i=PositionsTotal()-1; i>=0; i--)
     {
      ulong ticket=PositionGetTicket(i);
      if(ticket==0)
        {
         PrintFormat("SigBridge: cannot select position %d, error %d",i,GetLastError());
         continue;
        }
      if(PositionGetString(POSITION_SYMBOL)!=_Symbol || (ulong)PositionGetInteger(POSITION_MAGIC)!=InpMagicNumber)
         continue;
      if((ENUM_POSITION_TYPE)PositionGetInteger(POSITION_TYPE)==wanted)
        {
         holding=true;
         continue;
        }
      if(!g_trade.PositionClose(ticket))
         PrintFormat("SigBridge: closing position %I64u failed, error %d, retcode %u: %s",ticket,GetLastError(),
                     g_trade.ResultRetcode(),g_trade.ResultRetcodeDescription());
     }
   if(!holding)
      OpenPosition(wanted);
  }
//+------------------------------------------------------------------+
//| Opens one position of InpLots with the stop loss and take profit.|
//+------------------------------------------------------------------+
void OpenPosition(const ENUM_POSITION_TYPE type)
  {
   MqlTick tick;
   if(!SymbolInfoTick(_Symbol,tick))
     {
      PrintFormat("SigBridge: no current price for %s, error %d",_Symbol,GetLastError());
      return;
     }
   double volume=NormalizeVolume(InpLots);
   if(volume<=0.0)
      return;
   bool buy=(type==POSITION_TYPE_BUY);
   double price=buy ? tick.ask : tick.bid;
   double sign=buy ? 1.0 : -1.0;
   double stopLoss=(InpStopLossPoints>0) ? NormalizeDouble(price-sign*InpStopLossPoints*_Point,_Digits) : 0.0;
   double takeProfit=(InpTakeProfitPoints>0) ? NormalizeDouble(price+sign*InpTakeProfitPoints*_Point,_Digits) : 0.0;
   bool sent=buy ? g_trade.Buy(volume,_Symbol,price,stopLoss,takeProfit,"sigbridge") :
             g_trade.Sell(volume,_Symbol,price,stopLoss,takeProfit,"sigbridge");
   uint retcode=g_trade.ResultRetcode();
   if(!sent || (retcode!=TRADE_RETCODE_DONE && retcode!=TRADE_RETCODE_PLACED))
      PrintFormat("SigBridge: %s %.2f lots failed, error %d, retcode %u: %s",buy ? "buying" : "selling",volume,
                  GetLastError(),retcode,g_trade.ResultRetcodeDescription());
  }
//+------------------------------------------------------------------+
//| Rounds `lots` down to the symbol's volume step; 0 when below the |
//| minimum volume.                                                  |
//+------------------------------------------------------------------+
double NormalizeVolume(const double lots)
  {
   double minimum=0.0;
   double maximum=0.0;
   double step=0.0;
   if(!SymbolInfoDouble(_Symbol,SYMBOL_VOLUME_MIN,minimum) || !SymbolInfoDouble(_Symbol,SYMBOL_VOLUME_MAX,maximum) ||
      !SymbolInfoDouble(_Symbol,SYMBOL_VOLUME_STEP,step) || step<=0.0)
     {
      PrintFormat("SigBridge: cannot read the volume limits of %s, error %d",_Symbol,GetLastError());
      return(0.0);
     }
   double volume=MathFloor(lots/step+1e-9)*step;
   if(volume<minimum)
     {
      PrintFormat("SigBridge: InpLots=%g is below the minimum volume %g of %s",lots,minimum,_Symbol);
      return(0.0);
     }
   return(MathMin(volume,maximum));
  }
//+------------------------------------------------------------------+
//| Moves the signal arrow to the signal's bar.                      |
//+------------------------------------------------------------------+
void DrawSignal(const SigBridgeSignal &signal)
  {
   int shift=iBarShift(_Symbol,_Period,signal.barTime,true);
   if(shift<0)
     {
      PrintFormat("SigBridge: the signal's bar %s is not on the chart, error %d",TimeToString(signal.barTime),
                  GetLastError());
      return;
     }
   int direction=SignalDirection(signal.score);
   double price=(direction>=0) ? iLow(_Symbol,_Period,shift) : iHigh(_Symbol,_Period,shift);
   if(ObjectFind(0,SIGBRIDGE_ARROW_NAME)<0 && !ObjectCreate(0,SIGBRIDGE_ARROW_NAME,OBJ_ARROW,0,signal.barTime,price))
     {
      PrintFormat("SigBridge: cannot create the signal arrow, error %d",GetLastError());
      return;
     }
   int code=SIGBRIDGE_ARROW_FLAT;
   color colour=clrGray;
   if(direction>0)
     {
      code=SIGBRIDGE_ARROW_BUY;
      colour=clrDodgerBlue;
     }
   else if(direction<0)
     {
      code=SIGBRIDGE_ARROW_SELL;
      colour=clrOrangeRed;
     }
   if(!ObjectMove(0,SIGBRIDGE_ARROW_NAME,0,signal.barTime,price) ||
      !ObjectSetInteger(0,SIGBRIDGE_ARROW_NAME,OBJPROP_ARROWCODE,code) ||
      !ObjectSetInteger(0,SIGBRIDGE_ARROW_NAME,OBJPROP_COLOR,colour) ||
      !ObjectSetInteger(0,SIGBRIDGE_ARROW_NAME,OBJPROP_ANCHOR,direction>=0 ? ANCHOR_TOP : ANCHOR_BOTTOM) ||
      !ObjectSetString(0,SIGBRIDGE_ARROW_NAME,OBJPROP_TOOLTIP,
                       StringFormat("sigbridge score %.4f, distance %s, model %I64d",signal.score,
                                    DoubleToString(signal.distance,_Digits),signal.modelVersion)))
      PrintFormat("SigBridge: cannot update the signal arrow, error %d",GetLastError());
   ChartRedraw();
  }
//+------------------------------------------------------------------+
//| Writes the connection, daemon state and latest signal into the   |
//| chart comment.                                                   |
//+------------------------------------------------------------------+
void ShowStatus(void)
  {
   string connection="";
   switch(g_client.state())
     {
      case SIGBRIDGE_CLIENT_DISCONNECTED:
         connection=StringFormat("no connection, retrying in %.1f s",g_client.reconnectInMs()/1000.0);
         break;
      case SIGBRIDGE_CLIENT_WAITING_WELCOME:
         connection="connecting to "+InpEndpoint;
         break;
      case SIGBRIDGE_CLIENT_WAITING_BARS:
         connection="sending bars";
         break;
      default:
         connection=(g_client.acknowledgedTime()>0) ?
                    "connected, bars sent up to "+TimeToString(g_client.acknowledgedTime()) : "connected";
         break;
     }
   string daemon=(g_client.daemonState()=="") ? "unknown" :
                 g_client.daemonState()+": "+g_client.daemonMessage();
   string latest="none yet";
   SigBridgeSignal signal;
   if(g_client.latestSignal(signal))
     {
      int direction=SignalDirection(signal.score);
      latest=StringFormat("%s %s, score %.4f, distance %s, model %I64d",TimeToString(signal.barTime),
                          direction>0 ? "BUY" : (direction<0 ? "SELL" : "FLAT"),signal.score,
                          DoubleToString(signal.distance,_Digits),signal.modelVersion);
     }
   string error=(g_client.lastError()=="") ? "" : "\nLast error: "+g_client.lastError();
   Comment(StringFormat("SigBridge %s %s, trading %s\nConnection: %s\nDaemon: %s\nLatest signal: %s%s",
                        _Symbol,SigBridgeTimeframeName(Period()),InpTradeEnabled ? "on" : "off",connection,
                        daemon,latest,error));
  }
//+------------------------------------------------------------------+
