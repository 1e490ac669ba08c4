//+------------------------------------------------------------------+
//| SigBridgeSelfTest.mq5                                            |
//| Checks this terminal's build of the sigbridge include files      |
//| against the golden msgpack vectors of the Python daemon. Needs   |
//| no daemon and no DLL; the result goes to the Experts journal.    |
//+------------------------------------------------------------------+
#property copyright "sigbridge"
#property version   "1.00"
#property description "Compares the sigbridge msgpack encoder and reply parser with the daemon's golden vectors."

#include <SigBridge/SelfTest.mqh>

//+------------------------------------------------------------------+
//| Script program start function                                    |
//+------------------------------------------------------------------+
void OnStart()
  {
   int checks=0;
   int failures=SigBridgeRunSelfTest(checks);
   if(failures==0)
      PrintFormat("SigBridge self-test passed: %d checks, 0 failures",checks);
   else
      PrintFormat("SigBridge self-test FAILED: %d of %d checks failed; the lines above name them",failures,checks);
  }
//+------------------------------------------------------------------+
