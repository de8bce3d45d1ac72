import CBuildInfo

/// What `sioagent --version` prints and `sioagent_build_info` carries.
public enum BuildInfo {
    /// The release version; scripts/package-deb takes the package's version from this line.
    public static let version = "0.1.0"
    /// The commit the binary was built from: recorded by scripts/build-release, else "unknown".
    public static let commit = String(cString: sioagent_build_commit())
    /// The build date (UTC, ISO 8601, from SOURCE_DATE_EPOCH: the commit's date unless set),
    /// else "unknown".
    public static let date = String(cString: sioagent_build_date())

    /// `sioagent 0.1.0 (commit 1f483ba, built 2026-12-07T01:15:56Z)`
    public static var line: String { "sioagent \(version) (commit \(commit), built \(date))" }
}
