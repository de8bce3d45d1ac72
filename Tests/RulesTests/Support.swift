import Foundation
import Rules
import SIOCore
import TestSupport
import Testing

/// Loads one in-memory rule file named `t.yaml`.
func load(_ yaml: String, environment: [String: String] = [:]) -> (RuleSet?, [Diagnostic]) {
    let (set, diagnostics) = RuleSet.load(sources: [(path: "t.yaml", text: yaml)], environment: environment)
    return (set, diagnostics)
}

/// Loads rules that must be valid.
func rules(_ yaml: String, environment: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation) throws -> RuleSet {
    let (set, diagnostics) = load(yaml, environment: environment)
    #expect(diagnostics.filter { $0.severity == .error }.isEmpty, "\(diagnostics)", sourceLocation: sourceLocation)
    return try #require(set, sourceLocation: sourceLocation)
}

/// The errors of a file as "LINE:COL: MESSAGE".
func errors(_ yaml: String) -> [String] {
    load(yaml).1.filter { $0.severity == .error }.map { "\($0.line):\($0.column): \($0.message)" }
}

func event(_ name: String, _ args: JSONValue..., namespace: String = "/", ack: Bool = false) -> RuleEvent {
    RuleEvent(namespace: namespace, name: name, args: args, canReply: ack)
}

/// A compact view of planned actions for assertions: "AT RULE PHASE ACTION DETAIL".
func describe(_ actions: [PlannedAction]) -> [String] {
    actions.map { RuleTestRunner.summary($0) }
}

/// The package's root directory (this file is Tests/RulesTests/Support.swift).
let packageRoot = URL(fileURLWithPath: TestPaths.packageRoot)
