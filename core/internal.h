/* internal declarations shared by core files. */
#ifndef WGF_INTERNAL_H
#define WGF_INTERNAL_H
#endif
