/* plugins/energies/potential.c: not written yet. */
typedef int wgf_unwritten_;
