import Foundation
import Rules
import SIOCore
import TestSupport
import Testing

/// The Python with `jsonschema` (from `scripts/setup-venv`): `SIOAGENT_PYTHON` or `<root>/.venv/bin/python`.
let schemaPython: String? = TestPaths.pythonIfPresent

/// Validates each JSON document against the schema with python-jsonschema; returns one line per document: "ok" or the error.
func validateWithSchema(_ documents: [JSONValue]) throws -> [String] {
    let python = try #require(schemaPython)
    let input = try temporaryFile("docs.json", JSONValue.array(documents).jsonString())
    let script = """
        import json, sys, jsonschema
        schema = json.load(open(sys.argv[1]))
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        for doc in json.load(open(sys.argv[2])):
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
            print("ok" if not errors else "invalid: " + "/".join(map(str, errors[0].path)) + ": " + errors[0].message[:200])
        """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = ["-c", script, packageRoot.appendingPathComponent("schema/rules.schema.json").path, input]
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    #expect(process.terminationStatus == 0, "\(String(decoding: e, as: UTF8.self))")
    return String(decoding: o, as: UTF8.self).split(separator: "\n").map(String.init)
}

// Runs when the venv (or SIOAGENT_PYTHON) is there; .ci/run and scripts/test always provide it.
@Suite(.enabled(if: schemaPython != nil, "needs scripts/setup-venv (python with jsonschema)"))
struct SchemaTests {
    @Test func exampleRulesValidateAgainstTheSchema() throws {
        let dir = packageRoot.appendingPathComponent("rules").path
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count >= 3)
        var documents: [JSONValue] = []
        for file in files {
            let text = try String(contentsOfFile: dir + "/" + file, encoding: .utf8)
            documents.append(try #require(RuleSet.yamlAsJSON(text), "\(file) is not YAML"))
        }
        let results = try validateWithSchema(documents)
        #expect(results == Array(repeating: "ok", count: files.count), "\(zip(files, results).map { "\($0): \($1)" })")
    }

    @Test func schemaRejectsWhatTheLoaderRejects() throws {
        let bad = [
            "rules:\n  - id: a\n    on: x\n    wehn: payload < 1\n    then: [{log: stdout}]\n",
            "rules:\n  - id: a\n    on: x\n    for: 2\n    then: [{log: stdout}]\n",
            "rules:\n  - id: a\n    on: x\n    then: [{shell: 'echo {{ payload }}'}]\n",
            "rules:\n  - id: a\n    on: x\n    then: [{emitt: x}]\n",
            "rules:\n  - id: a\n    every: 1m\n    on: x\n    then: [{log: stdout}]\n",
        ]
        let results = try validateWithSchema(bad.map { try #require(RuleSet.yamlAsJSON($0)) })
        #expect(results.count == bad.count)
        #expect(results.allSatisfy { $0.hasPrefix("invalid") }, "\(results)")
        for text in bad { #expect(load(text).1.contains { $0.severity == .error }) }
    }
}
