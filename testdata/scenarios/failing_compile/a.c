// Deliberately broken (missing semicolon); the test fixes it.
int Answer(void) { return 41 }
