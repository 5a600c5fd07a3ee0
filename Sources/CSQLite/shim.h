#include <stdint.h>
#include <sqlite3.h>
