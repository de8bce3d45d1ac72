/// Substring search by UTF-8 bytes, which is a search by Unicode scalars: UTF-8 is
/// self-synchronising, so the bytes of `needle` occur in the text exactly where its scalars do.
///
/// The standard library's `contains(_:)` and `firstRange(of:)` with a string argument live in
/// `_StringProcessing`, and one call to either links that whole module, the regular-expression
/// engine and parser included (1.4 MB of a static binary); these do not. They compare scalars as
/// written, with no Unicode normalisation and no grapheme boundaries: `"e\u{301}"` (e and a
/// combining accent) contains `"e"`, and `"é"` (U+00E9) does not contain `"e\u{301}"`.
///
/// Time is linear in the text and the needle together (Knuth–Morris–Pratt for needles longer than
/// 16 bytes, whose table is the one allocation), so a long hostile text and a long hostile needle
/// cannot make a search quadratic.
extension StringProtocol {
    /// Whether `needle` occurs in the text (an empty needle always does).
    public func containsText(_ needle: some StringProtocol) -> Bool {
        utf8Offset(of: needle) != nil
    }

    /// The range of the first occurrence of `needle`, in this text's indices.
    public func rangeOfText(_ needle: some StringProtocol) -> Range<Index>? {
        guard let offset = utf8Offset(of: needle) else { return nil }
        let lower = utf8.index(utf8.startIndex, offsetBy: offset)
        let upper = utf8.index(lower, offsetBy: needle.utf8.count)
        return lower..<upper
    }

    /// The UTF-8 offset of the first occurrence of `needle`.
    private func utf8Offset(of needle: some StringProtocol) -> Int? {
        let n = needle.utf8.count
        if n == 0 { return 0 }
        if n > utf8.count { return nil }
        return withUTF8Bytes(of: self) { hay in
            withUTF8Bytes(of: needle) { pin in firstOffset(of: pin, in: hay) }
        }
    }
}

/// Where `needle` (not empty, not longer than `hay`) first occurs in `hay`.
private func firstOffset(of needle: UnsafeBufferPointer<UInt8>, in hay: UnsafeBufferPointer<UInt8>) -> Int? {
    let n = needle.count, last = hay.count - n
    if n <= 16 {
        // Short needles: at most 16 comparisons a position.
        var i = 0
        outer: while i <= last {
            for j in 0..<n where hay[i + j] != needle[j] {
                i += 1
                continue outer
            }
            return i
        }
        return nil
    }
    // border[j]: the length of the longest proper prefix of needle[0...j] that is also its suffix.
    var border = [Int](repeating: 0, count: n)
    var k = 0
    for j in 1..<n {
        while k > 0, needle[j] != needle[k] { k = border[k - 1] }
        if needle[j] == needle[k] { k += 1 }
        border[j] = k
    }
    k = 0
    for i in 0..<hay.count {
        while k > 0, hay[i] != needle[k] { k = border[k - 1] }
        if hay[i] == needle[k] { k += 1 }
        if k == n { return i - n + 1 }
    }
    return nil
}

/// Runs `body` on the UTF-8 bytes of `text`, copied only when they are not contiguous already
/// (a bridged or lazily built string).
private func withUTF8Bytes<S: StringProtocol, R>(of text: S, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    if let result = text.utf8.withContiguousStorageIfAvailable(body) { return result }
    return Array(text.utf8).withUnsafeBufferPointer(body)
}
