#ifndef DODO_TESTDATA_MAKE_PARALLEL_UTIL_H_
#define DODO_TESTDATA_MAKE_PARALLEL_UTIL_H_

// Prints "WORD, NAME" on one line.
void Say(const char* word, const char* name);

#endif  // DODO_TESTDATA_MAKE_PARALLEL_UTIL_H_
