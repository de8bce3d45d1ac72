#ifndef SIOAGENT_CBUILDINFO_H
#define SIOAGENT_CBUILDINFO_H

/// The commit the binary was built from ("unknown" when built outside scripts/build-release).
const char *sioagent_build_commit(void);
/// The build date, UTC, ISO 8601 (from SOURCE_DATE_EPOCH: by default the commit's date, so two
/// builds of one commit are identical); "unknown" when built outside scripts/build-release.
const char *sioagent_build_date(void);

#endif
