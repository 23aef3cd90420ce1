// The program that make_libdir's app/Makefile links with lib/libutil.a.
void Say(const char* word);

int main(void) {
  Say("hello");
  return 0;
}
