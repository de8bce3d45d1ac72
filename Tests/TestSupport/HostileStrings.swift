/// Hostile text from outside: each string, and what the one sanitiser (SIOCore's `OutsideText`)
/// makes of it. One table, run against every line-oriented sink.
public enum HostileStrings {
    /// (text, what `OutsideText.escaped` gives).
    public static let table: [(String, String)] = [
        ("no\r\nWATCHDOG=trigger\r\nMAINPID=1", #"no\r\nWATCHDOG=trigger\r\nMAINPID=1"#),
        ("a\nb", #"a\nb"#),
        ("a\rb", #"a\rb"#),
        ("a\r\nb", #"a\r\nb"#),
        ("tab\there", #"tab\there"#),
        ("nel\u{85}READY=1", #"nel\u{85}READY=1"#),
        ("ls\u{2028}ps\u{2029}", #"ls\u{2028}ps\u{2029}"#),
        ("esc\u{1b}[31mred", #"esc\u{1b}[31mred"#),
        ("nul\u{0}bell\u{7}del\u{7f}", #"nul\u{0}bell\u{7}del\u{7f}"#),
        ("c1\u{80}\u{9f}", #"c1\u{80}\u{9f}"#),
        ("bidi\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}", #"bidi\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}"#),
        ("isolate\u{2066}\u{2067}\u{2068}\u{2069}", #"isolate\u{2066}\u{2067}\u{2068}\u{2069}"#),
        ("back\\nslash", #"back\\nslash"#),
        ("quote\"=value", "quote\"=value"),
        // A CR or LF with a combining mark is one Character, still two scalars.
        ("cr\r\u{301}lf\n\u{301}", "cr\\r\u{301}lf\\n\u{301}"),
        ("plain é ✓ 日本", "plain é ✓ 日本"),
    ]
}

