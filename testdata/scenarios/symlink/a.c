// VALUE comes from whichever header link.h points to.
#include "link.h"

int Value(void) { return VALUE; }
