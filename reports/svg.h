/* svg.h — minimal line charts as standalone SVG (well-formed XML, no scripts, no fonts). */
#ifndef QB_SVG_H
#define QB_SVG_H
#include <stdio.h>

#define SVG_MAX_SERIES 16
#define SVG_MAX_POINTS 256

typedef struct {
    char name[96];
    int n;
    double x[SVG_MAX_POINTS], y[SVG_MAX_POINTS];
} svg_series;

typedef struct {
    char title[160], xlabel[64], ylabel[64];
    double ymin, ymax;         /* fixed y range (e.g. 0..100) */
    int n_series;
    svg_series series[SVG_MAX_SERIES];
    int n_xticks;
    double xticks[SVG_MAX_POINTS];
    char xtick_labels[SVG_MAX_POINTS][16];
} svg_chart;

/* Write the chart; returns 0 or -1 on a write error. */
int svg_write_chart(FILE *f, const svg_chart *c);
/* Several charts as panels of one document, `cols` per row (640×400 each), under a title. */
int svg_write_grid(FILE *f, const svg_chart *const *charts, int n, int cols, const char *title);
/* XML-escape s into f. */
void svg_escape(FILE *f, const char *s);

#endif
