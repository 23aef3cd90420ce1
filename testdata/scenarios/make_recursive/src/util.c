#include "util.h"

#include <stdio.h>

void Say(const char* word, const char* name) { printf("%s, %s\n", word, name); }
