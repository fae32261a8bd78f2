/* plugins/energies/kernel.c: not written yet. */
typedef int wgf_unwritten_;
