#include "util.h"

const char* Greeting(void) { return "hello from make"; }
