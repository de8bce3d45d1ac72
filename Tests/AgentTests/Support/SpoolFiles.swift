import Foundation

/// The spool files (`*.alert`) in `dir`, by name.
func alertFiles(_ dir: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".alert") }.sorted()
}

/// Alerts in the spool files of `dir` (one JSON line each).
func alertCount(_ dir: String) -> Int {
    alertFiles(dir).reduce(0) { count, name in
        let text = (try? String(contentsOfFile: dir + "/" + name, encoding: .utf8)) ?? ""
        return count + text.split(separator: "\n").count
    }
}
