extension StringProtocol {
    /// The text without the white space (Unicode's definition: spaces, tabs, line breaks, …) at
    /// either end.
    public func trimmingSpaces() -> String {
        let scalars = Substring(self).unicodeScalars
        var lo = scalars.startIndex, hi = scalars.endIndex
        while lo < hi, scalars[lo].properties.isWhitespace { lo = scalars.index(after: lo) }
        while hi > lo, scalars[scalars.index(before: hi)].properties.isWhitespace { hi = scalars.index(before: hi) }
        return String(scalars[lo..<hi])
    }
}
