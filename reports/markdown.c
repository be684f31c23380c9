/* markdown.c — Markdown tables whose columns line up on a terminal (widths in code points). */
#include "markdown.h"
#include <stdarg.h>
#include <string.h>

void md_set(md_table *t, int r, int c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->cell[r][c], sizeof t->cell[r][c], fmt, ap);
    va_end(ap);
    if (r + 1 > t->rows) t->rows = r + 1;
    if (c + 1 > t->cols) t->cols = c + 1;
}

/* display width: UTF-8 code points (ε, Δ and — are one column each) */
int utf8_width(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

void md_write(FILE *f, const md_table *t) {
    int w[12] = {0};
    for (int c = 0; c < t->cols; c++) {
        w[c] = 3;
        for (int r = 0; r < t->rows; r++) {
            int len = utf8_width(t->cell[r][c]);
            if (len > w[c]) w[c] = len;
        }
    }
    for (int r = 0; r < t->rows; r++) {
        fputc('|', f);
        for (int c = 0; c < t->cols; c++) {
            fprintf(f, " %s", t->cell[r][c]);
            for (int i = utf8_width(t->cell[r][c]); i < w[c]; i++) fputc(' ', f);
            fputs(" |", f);
        }
        fputc('\n', f);
        if (r == 0) {
            fputc('|', f);
            for (int c = 0; c < t->cols; c++) {
                fputc(' ', f);
                for (int i = 0; i < w[c]; i++) fputc('-', f);
                fputs(" |", f);
            }
            fputc('\n', f);
        }
    }
    fputc('\n', f);
}

