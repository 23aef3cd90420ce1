// The edited half of the two-file build: scenarios change the value or
// append a comment.
int Answer(void) { return 41; }
