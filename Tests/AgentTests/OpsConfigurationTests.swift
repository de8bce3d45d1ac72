import Agent
import Foundation
import SocketIO
import TestSupport
import Testing

/// `server.proxy` and `metrics:` in the configuration file.
struct OpsConfigurationTests {
    func load(_ text: String, environment: [String: String] = [:]) throws(ConfigErrors) -> AgentConfiguration {
        let dir = try! TestPaths.temporaryDirectory("ops-config")
        let path = dir + "/agent.yaml"
        try! text.write(toFile: path, atomically: true, encoding: .utf8)
        return try AgentConfiguration.load(path: path, overrides: AgentOverrides(), environment: environment)
    }

    @Test func proxyAndMetricsAreRead() throws {
        let c = try load(
            """
            server:
              url: https://devices.example.com
              proxy: http://agent:${PROXY_PASSWORD}@proxy.corp:3128
            rules: rules
            metrics:
              listen: 127.0.0.1:9464
              textfile: metrics/sioagent.prom
              interval: 30s
            """, environment: ["PROXY_PASSWORD": "pw"])
        #expect(c.server.proxy == .url("http://agent:pw@proxy.corp:3128"))
        #expect(c.clientConfiguration.proxy == .url("http://agent:pw@proxy.corp:3128"))
        #expect(c.metrics.listen?.host == "127.0.0.1" && c.metrics.listen?.port == 9464)
        #expect(c.metrics.textfile?.hasSuffix("/metrics/sioagent.prom") == true)
        #expect(c.metrics.interval == .seconds(30))
        #expect(c.metrics.enabled)
    }

    @Test func defaultsAreTheEnvironmentsProxyAndNoMetrics() throws {
        let c = try load("server: {url: http://127.0.0.1:3000}\nrules: rules\n", environment: ["http_proxy": "http://p:1"])
        #expect(c.server.proxy == .environment)
        #expect(c.clientConfiguration.environment?["http_proxy"] == "http://p:1")
        #expect(!c.metrics.enabled)
        #expect(try load("server: {url: http://127.0.0.1:3000, proxy: none}\nrules: rules\n").server.proxy == .direct)
    }

    @Test func badValuesArePositionedErrorsWithoutTheCredentials() throws {
        do {
            _ = try load(
                """
                server:
                  url: http://127.0.0.1:3000
                  proxy: https://agent:topsecret@proxy:3128
                rules: rules
                metrics: {listen: "9464", interval: 10ms, texfile: x}
                """)
            Issue.record("loaded")
        } catch {
            let text = "\(error)"
            #expect(text.contains(":3:10: error: server.proxy: invalid URL: proxy https://***@proxy:3128: only http:// proxies are supported"))
            #expect(!text.contains("topsecret"))
            #expect(text.contains("metrics.listen must be host:port"))
            #expect(text.contains("metrics.interval must be between 1s and 1h"))
            #expect(text.contains("unknown key 'texfile' in metrics; did you mean 'textfile'?"))
        }
    }
}
