import BakeoffTracking
import Foundation
import Testing

@Suite("The MLflow server's URL and credentials")
struct MLflowServerTests {
    @Test func onlyHTTPAndHTTPSAreTakenAndTheErrorSaysWhatIs() {
        for uri in ["file:///tmp/mlruns", "databricks", "sqlite:///mlflow.db", "localhost:5000", "ftp://host"] {
            #expect(throws: TrackingError.self) { try MLflowServer(uri: uri, environment: [:]) }
            do {
                _ = try MLflowServer(uri: uri, environment: [:])
            } catch {
                #expect(error.kind == .invalidSetup)
                #expect(error.message.contains("http:// or https://"))
                #expect(error.message.contains(uri))
            }
        }
        #expect(throws: TrackingError.self) { try MLflowServer(uri: "http://", environment: [:]) }
        #expect(throws: TrackingError.self) { try MLflowServer(uri: "http://host:5000/?x=1", environment: [:]) }
    }

    @Test func theBaseURLLosesItsTrailingSlashAndShowsNoPassword() throws {
        let s = try MLflowServer(uri: "HTTPS://me:secret@mlflow.example.com:8443/prefix/", environment: [:])
        #expect(s.uri == "HTTPS://me:secret@mlflow.example.com:8443/prefix")
        #expect(s.displayURI == "https://mlflow.example.com:8443/prefix")
        #expect(s.hostHeader == "mlflow.example.com:8443")
        #expect(s.runURL(experimentID: "3", runID: "abc") == "https://mlflow.example.com:8443/prefix/#/experiments/3/runs/abc")
    }

    @Test func credentialsComeFromTheEnvironmentAsMLflowsClientReadsThem() throws {
        let none = try MLflowServer(uri: "http://127.0.0.1:5000", environment: [:])
        #expect(none.authorization == nil)
        let token = try MLflowServer(uri: "http://127.0.0.1:5000", environment: ["MLFLOW_TRACKING_TOKEN": "t0k", "MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p"])
        #expect(token.authorization == "Bearer t0k")
        let basic = try MLflowServer(uri: "http://127.0.0.1:5000", environment: ["MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": "pässword"])
        #expect(basic.authorization == "Basic " + Data("admin:pässword".utf8).base64EncodedString())
        #expect(basic.authorization == "Basic YWRtaW46cMOkc3N3b3Jk")
        do {
            _ = try MLflowServer(uri: "http://127.0.0.1:5000", environment: ["MLFLOW_TRACKING_USERNAME": "admin"])
            Issue.record("a user without a password was taken")
        } catch {
            #expect(error.kind == .invalidSetup)
            #expect(error.message.contains("MLFLOW_TRACKING_PASSWORD is not"))
        }
    }
}
