/*
 * Reference oracle for tests/reference.rs: libinjection's C implementation, reading one value per
 * line as hex (so any byte, NUL included, survives) and writing "SQLI FINGERPRINT XSS" per line,
 * e.g. "1 s&sos 0" or "0 - 1". Built against libinjection's C sources by build-reference.sh.
 */
#include <stdio.h>
#include <string.h>

#include "libinjection.h"
#include "libinjection_sqli.h"

static int hex_value(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int main(void) {
    static char line[1 << 18];
    static char value[1 << 17];
    while (fgets(line, sizeof line, stdin)) {
        size_t n = strcspn(line, "\r\n");
        size_t len = 0;
        for (size_t i = 0; i + 1 < n && len < sizeof value; i += 2) {
            int hi = hex_value(line[i]), lo = hex_value(line[i + 1]);
            if (hi < 0 || lo < 0) break;
            value[len++] = (char)(hi * 16 + lo);
        }
        char fingerprint[8] = {0};
        int sqli = libinjection_sqli(value, len, fingerprint);
        int xss = libinjection_xss(value, len);
        printf("%d %s %d\n", sqli ? 1 : 0, sqli ? fingerprint : "-", xss ? 1 : 0);
    }
    return 0;
}
