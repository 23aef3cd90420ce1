#define GREETING "value"
