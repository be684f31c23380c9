/* svg.c — line charts for the reports: axes, ticks, one polyline with markers per series, legend. */
#include "svg.h"
#include <math.h>

static const char *COLOURS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                "#bcbd22", "#17becf"};

void svg_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t') fputc(*s, f);
        }
    }
}

/* One chart at (ox, oy): a standalone document, or a panel (a translated group) of a grid. */
static int write_chart(FILE *f, const svg_chart *c, double ox, double oy, int standalone) {
    const double W = 640, H = 400, L = 60, R = 170, T = 40, B = 50; /* plot area margins */
    double pw = W - L - R, ph = H - T - B;
    double xmin = INFINITY, xmax = -INFINITY;
    for (int i = 0; i < c->n_xticks; i++) xmin = fmin(xmin, c->xticks[i]), xmax = fmax(xmax, c->xticks[i]);
    for (int s = 0; s < c->n_series; s++)
        for (int i = 0; i < c->series[s].n; i++) xmin = fmin(xmin, c->series[s].x[i]), xmax = fmax(xmax, c->series[s].x[i]);
    if (!(xmax > xmin)) xmin -= 0.5, xmax += 0.5;
    double ymin = c->ymin, ymax = c->ymax > c->ymin ? c->ymax : c->ymin + 1;
#define PX(x) (L + ((x) - xmin) / (xmax - xmin) * pw)
#define PY(y) (T + ph - ((y) - ymin) / (ymax - ymin) * ph)
    if (standalone) {
        fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                   "font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
        fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    } else fprintf(f, "<g transform=\"translate(%.0f,%.0f)\">\n", ox, oy);
    fprintf(f, "<text x=\"%.0f\" y=\"22\" font-size=\"14\" font-weight=\"bold\">", L);
    svg_escape(f, c->title);
    fprintf(f, "</text>\n");
    /* grid and y ticks: 5 intervals */
    for (int i = 0; i <= 5; i++) {
        double y = ymin + (ymax - ymin) * i / 5;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, PY(y), L + pw, PY(y));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n", L - 6, PY(y) + 4, y);
    }
    for (int i = 0; i < c->n_xticks; i++) {
        double x = PX(c->xticks[i]);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", x, T, x, T + ph);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x, T + ph + 16);
        svg_escape(f, c->xtick_labels[i]);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", L, T, pw, ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", L + pw / 2, H - 12);
    svg_escape(f, c->xlabel);
    fprintf(f, "</text>\n<text transform=\"translate(16,%.1f) rotate(-90)\" text-anchor=\"middle\">", T + ph / 2);
    svg_escape(f, c->ylabel);
    fprintf(f, "</text>\n");
    for (int s = 0; s < c->n_series; s++) {
        const svg_series *sr = &c->series[s];
        const char *col = COLOURS[s % 10];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
        for (int i = 0; i < sr->n; i++) fprintf(f, "%s%.1f,%.1f", i ? " " : "", PX(sr->x[i]), PY(sr->y[i]));
        fprintf(f, "\"/>\n");
        for (int i = 0; i < sr->n; i++)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", PX(sr->x[i]), PY(sr->y[i]), col);
        double ly = T + 10 + 18 * s;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                L + pw + 12, ly, L + pw + 32, ly, col);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", L + pw + 38, ly + 4);
        svg_escape(f, sr->name);
        fprintf(f, "</text>\n");
    }
    fprintf(f, standalone ? "</svg>\n" : "</g>\n");
#undef PX
#undef PY
    return ferror(f) ? -1 : 0;
}

int svg_write_chart(FILE *f, const svg_chart *c) { return write_chart(f, c, 0, 0, 1); }

int svg_write_grid(FILE *f, const svg_chart *const *charts, int n, int cols, const char *title) {
    const double W = 640, H = 400, TT = title && *title ? 36 : 0;
    if (cols < 1) cols = 1;
    int rows = (n + cols - 1) / cols;
    double w = W * (n < cols ? n : cols), h = TT + H * rows;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", w, h, w, h);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    if (TT > 0) {
        fprintf(f, "<text x=\"20\" y=\"26\" font-size=\"18\" font-weight=\"bold\">");
        svg_escape(f, title);
        fprintf(f, "</text>\n");
    }
    for (int i = 0; i < n; i++)
        if (write_chart(f, charts[i], W * (i % cols), TT + H * (i / cols), 0)) return -1;
    fprintf(f, "</svg>\n");
    return ferror(f) ? -1 : 0;
}
