/* fab.c — targeted FAB (attacks.md §5). Not implemented yet: the projection subroutine of
 * autoattack/fab_projections.py is still to be ported. The 'standard' preset skips it and
 * says so; asking for fab-t alone is a usage error. */
#include "attacks.h"

int qb_fab_t_run(qb_attack_ws *ws, const qb_attack_cfg *cfg, const float *x, const int *y, const uint64_t *ids, int n,
                 float *xadv) {
    (void)ws, (void)cfg, (void)x, (void)y, (void)ids, (void)n, (void)xadv;
    return qb_error(QB_EXIT_USAGE, "fab-t: not implemented yet (the standard preset runs apgd-ce, apgd-t, square)");
}
