extension StringProtocol {
    /// Where `needle` first occurs, comparing UTF-8 bytes (so Unicode scalars, not characters:
    /// `"e"` is found in a decomposed `"é"`). An empty needle is found at the start.
    ///
    /// The agent's own search: `contains(_:)` and `firstRange(of:)` with a string argument come
    /// from `_StringProcessing`, and one call to them links Swift's whole regular-expression
    /// engine into the binary (1.3 MB; `scripts/check-release-binary` fails when it is linked).
    public func firstRange(ofText needle: some StringProtocol) -> Range<Index>? {
        let hay = utf8
        let pattern = Array(needle.utf8)
        guard let first = pattern.first else { return startIndex..<startIndex }
        var i = hay.startIndex
        while i != hay.endIndex {
            if hay[i] == first {
                var h = hay.index(after: i)
                var k = 1
                while k < pattern.count, h != hay.endIndex, hay[h] == pattern[k] {
                    h = hay.index(after: h)
                    k += 1
                }
                if k == pattern.count { return i..<h }
            }
            i = hay.index(after: i)
        }
        return nil
    }

    /// Whether `needle` occurs, comparing UTF-8 bytes (see ``firstRange(ofText:)``).
    public func contains(text needle: some StringProtocol) -> Bool {
        firstRange(ofText: needle) != nil
    }
}
