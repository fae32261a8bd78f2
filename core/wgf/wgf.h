/* wgf/wgf.h: everything of libwgf in one include. A plugin needs only
 * wgf/plugin.h (with batch.h, config.h and error.h, which it includes). */
#ifndef WGF_WGF_H
#define WGF_WGF_H

#include "error.h"
#include "batch.h"
#include "config.h"
#include "plugin.h"
#include "problem.h"
#include "dist.h"
#include "rng.h"
#include "linalg.h"
#include "reference.h"
#include "diagnostics.h"
#include "registry.h"
#include "run.h"
#include "selftest.h"
#include "samples.h"
#include "parallel.h"

#endif
