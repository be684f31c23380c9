/* paper.h — the QUEST paper's published numbers (engine.md §7, as reported by secondary
 * summaries; the PDF was not available), shown beside measured ones when a suite names them. */
#ifndef QB_PAPER_H
#define QB_PAPER_H
#include "report.h"

/* Known tables: "quest-vit-ti" (ImageNet-1k ViT-Ti/16, DeiT recipe: §7.1 and §7.3). */
int qb_paper_known(const char *name);
/* Append a Markdown section to f comparing the published rows with the report's models
 * (matched by attention kind: sdpa = Standard, quest = QUEST, qknorm = QKNorm). */
void qb_paper_section(FILE *f, const char *name, const qb_report *r);

#endif
