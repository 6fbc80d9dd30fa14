/* placeholder, replaced by the stream tool */
#include "common.h"
int main(int argc, char **argv) { (void)argc; prog_init(argv[0]); return 0; }
