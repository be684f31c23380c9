/* markdown.h — Markdown tables with aligned columns. */
#ifndef QB_MARKDOWN_H
#define QB_MARKDOWN_H
#include <stdio.h>

typedef struct {
    int rows, cols;
    char cell[128][12][260]; /* an attack name with its settings tag fits whole */
} md_table;

/* Set cell (r, c) printf-style; the table grows to include it. Row 0 is the header. */
void md_set(md_table *t, int r, int c, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Print with every column padded to its widest cell, and a blank line after. */
void md_write(FILE *f, const md_table *t);
/* Display width of a UTF-8 string in code points. */
int utf8_width(const char *s);

#endif
