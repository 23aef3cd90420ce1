// VALUE comes from the first config.h on the include path.
#include "config.h"

int Value(void) { return VALUE; }
