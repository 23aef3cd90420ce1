#ifndef DODO_TESTDATA_HELLO_UTIL_H_
#define DODO_TESTDATA_HELLO_UTIL_H_

// Returns the text the example program prints.
const char* Greeting(void);

#endif  // DODO_TESTDATA_HELLO_UTIL_H_
