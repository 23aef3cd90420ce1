// The code that app/hello links in from lib/libutil.a.
#include <stdio.h>

void Say(const char* word) { printf("%s, lib\n", word); }
