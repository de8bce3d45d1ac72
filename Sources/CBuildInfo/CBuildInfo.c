// The build's commit and date. scripts/build-release writes them to build-info.h beside this file
// (untracked) before it builds; only this file is then recompiled. A build without that header
// (swift build, the tests) reports "unknown".
#include "CBuildInfo.h"

#if __has_include("build-info.h")
#include "build-info.h"
#endif

#ifndef SIOAGENT_BUILD_COMMIT
#define SIOAGENT_BUILD_COMMIT "unknown"
#endif
#ifndef SIOAGENT_BUILD_DATE
#define SIOAGENT_BUILD_DATE "unknown"
#endif

const char *sioagent_build_commit(void) { return SIOAGENT_BUILD_COMMIT; }
const char *sioagent_build_date(void) { return SIOAGENT_BUILD_DATE; }
