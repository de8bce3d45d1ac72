import CCodePages
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `sioagent_release_code_pages` unmaps this process's code pages, and the code keeps running:
/// the pages come back from the page cache on their next use.
struct CodePagesTests {
    /// Resident kB of the executable's code mappings (`r-xp` lines of /proc/self/smaps naming the
    /// executable).
    private func residentCodeKB() throws -> Int { try codeKB().resident }

    /// Mapped and resident kB of the executable's code.
    private func codeKB() throws -> (mapped: Int, resident: Int) {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        try #require(length > 0)
        let exe = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let file = try #require(fopen("/proc/self/smaps", "r"))
        defer { fclose(file) }
        var mapped = 0
        var resident = 0
        var inCode = false
        var line = [CChar](repeating: 0, count: 8192)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let fields = text.split(separator: " ", omittingEmptySubsequences: true)
            if let first = fields.first, first.contains("-"), !first.hasSuffix(":"), fields.count >= 5 {
                let path = fields.count > 5 ? fields[5].trimmingCharacters() : ""
                inCode = fields[1] == "r-xp" && path == exe
            } else if inCode, fields.first == "Size:", fields.count > 1, let kB = Int(fields[1]) {
                mapped += kB
            } else if inCode, fields.first == "Rss:", fields.count > 1, let kB = Int(fields[1]) {
                resident += kB
            }
        }
        return (mapped, resident)
    }

    @Test func releasesTheExecutablesCodePagesAndKeepsRunning() throws {
        let before = try codeKB()
        try #require(before.resident > 0)
        let released = sioagent_release_code_pages()
        // The whole code segment, but for the pages at either end that it may share.
        #expect(released <= before.mapped * 1024)
        #expect(released >= before.mapped * 1024 - 2 * 4096)
        // Only what ran since (this test, the smaps reader, the test runner) is mapped again.
        #expect(try residentCodeKB() < before.resident)
    }
}

extension Substring {
    fileprivate func trimmingCharacters() -> String {
        String(self.filter { $0 != "\n" })
    }
}
