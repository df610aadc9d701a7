/* The shared library is every module (lifeline_objs) plus the 0.1 entry points (src/compat.c);
 * this unit only gives it a source of its own. */
