//! The app in process against a real chain and real gatekeepers: the patient's pages
//! after real actions through the app's own forms.

mod account;
mod care;
mod net;
mod patient;
mod people;
mod researcher;
mod viewer;
