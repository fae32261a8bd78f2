/* core/config.c: not written yet. */
typedef int wgf_unwritten_;
