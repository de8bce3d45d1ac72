import Foundation
import Logging
import NIOPosix
import SIOCore
import TestSupport
import Testing

@testable import Agent

/// One table of hostile strings (TestSupport's `HostileStrings`), run against every
/// line-oriented sink: systemd's STATUS=, metrics labels and help text, `log` action lines, the
/// agent's own log in text and JSON. None may produce a second line or carry a hostile scalar.
@Suite struct HostileTextSinkTests {
    static func assertOneSafeLine(_ text: String, _ sink: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!text.utf8.contains(0x0A) && !text.utf8.contains(0x0D), "\(sink): a line break in \(text.debugDescription)", sourceLocation: sourceLocation)
        #expect(!text.unicodeScalars.contains(where: OutsideText.isHostile), "\(sink): a hostile scalar in \(text.debugDescription)", sourceLocation: sourceLocation)
    }

    @Test(arguments: HostileStrings.table)
    func statusLineIsOneLine(text: String, expected: String) {
        let line = SystemdNotifier.statusLine("cannot connect: " + text)
        Self.assertOneSafeLine(line, "STATUS=")
        #expect(line == "cannot connect: " + expected)
    }

    @Test(arguments: HostileStrings.table)
    func metricsLabelsAndHelpAreOneLine(text: String, expected: String) {
        let label = escape(text)
        Self.assertOneSafeLine(label, "label")
        // The label parses back (the format's escapes undone) to the sanitised text.
        var parsed = String.UnicodeScalarView()
        var escaping = false
        for c in label.unicodeScalars {
            if escaping {
                parsed.append(c)
                escaping = false
            } else if c == "\\" {
                escaping = true
            } else {
                #expect(c != "\"", "an unescaped quote ends the label early")
                parsed.append(c)
            }
        }
        #expect(String(parsed) == expected)
        let help = helpLine("sioagent_x", text)
        #expect(help.hasSuffix("\n"))
        Self.assertOneSafeLine(String(help.dropLast()), "HELP")
    }

    @Test(arguments: HostileStrings.table)
    func logActionLinesAreOneLine(text: String, expected: String) {
        let line = escapingControlCharacters(text)
        Self.assertOneSafeLine(line, "log action")
        #expect(line == expected)
    }

    @Test func theAgentsOwnLogKeepsEachEventOnOneLineInTextAndJSON() throws {
        let dir = try TestPaths.temporaryDirectory("hostile-log")
        for format in [AgentLogHandler.Format.text, .json] {
            let path = dir + "/\(format).log"
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            let handler = AgentLogHandler(label: "t", format: format, level: .info, fileDescriptor: fd)
            let logger = Logger(label: "t", factory: { _ in handler })
            for (text, _) in HostileStrings.table {
                logger.error("message \(text)", metadata: ["value": "\(text)", "key\(text)": "v"])
            }
            close(fd)
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            // Split on the byte, not on Character (where "\r\n" is one).
            let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast()
            #expect(lines.count == HostileStrings.table.count, "\(format): \(lines.count) lines")
            for line in lines {
                Self.assertOneSafeLine(String(decoding: line, as: UTF8.self), "\(format) log")
            }
            if format == .json {
                for (line, (text, _)) in zip(lines, HostileStrings.table) {
                    let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
                    #expect(object?["value"] as? String == text, "JSON keeps the value")
                }
            } else {
                for (line, (_, expected)) in zip(lines, HostileStrings.table) {
                    #expect(String(decoding: line, as: UTF8.self).contains("message " + expected))
                }
            }
        }
    }
}
